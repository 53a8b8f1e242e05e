import boto3

import labkit

# Step 8's URI, looked up instead of pasted (the aws CLI: describe-repositories).
ecr = boto3.client("ecr")
found = ecr.describe_repositories(repositoryNames=[lab.repository_name])  # "myrepo"
REPOSITORY = found["repositories"][0]["repositoryUri"]  # step 20
with q1.attempt():
    REPOSITORY = labkit.ecr.check_repository_uri(lab, REPOSITORY)  # yours? says what differs
    REPOSITORY = labkit.tasks.task2.push_address(lab, REPOSITORY)  # an endpoint's own port?
    print(f"REPOSITORY={REPOSITORY}")
