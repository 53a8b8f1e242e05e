import json

import boto3

import labkit

ecr = boto3.client("ecr")
iam = boto3.client("iam")
with q2.attempt():
    role_arn = iam.get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": role_arn},
        "Action": list(labkit.ecr.REPOSITORY_ACTIONS),  # step 15: all actions
    }
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    ecr.set_repository_policy(repositoryName=lab.repository_name, policyText=json.dumps(policy))
    print(json.dumps(policy, indent=2))
