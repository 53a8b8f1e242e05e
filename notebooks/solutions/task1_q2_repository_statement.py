import json

import boto3

import labkit

iam = boto3.client("iam")
ecr = boto3.client("ecr")
with q2.attempt():
    role_arn = iam.get_role(RoleName="Ec2instanceRole")["Role"]["Arn"]  # step 14
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "my_repository_statement",  # step 13
                "Effect": "Allow",
                "Principal": {"AWS": role_arn},  # step 14
                "Action": list(labkit.ecr.REPOSITORY_ACTIONS),  # step 15: all actions
            }
        ],
    }
    reply = ecr.set_repository_policy(  # step 16
        repositoryName=lab.repository_name, policyText=json.dumps(policy)
    )
    print(json.dumps(json.loads(reply["policyText"]), indent=2))
