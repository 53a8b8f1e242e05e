# Stuck? challenge.hint("pull-denied") shows a clue (each costs points).
import json

with challenge.attempt("pull-denied"):
    role_arn = boto3.client("iam").get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": list(labkit.ecr.REPOSITORY_ACTIONS),
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    ecr.set_repository_policy(repositoryName=lab.repository_name, policyText=json.dumps(policy))
