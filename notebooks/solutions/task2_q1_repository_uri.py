import boto3

import labkit

# Step 8's URI, looked up instead of pasted (the aws CLI: describe-repositories).
ecr = boto3.client("ecr")
found = ecr.describe_repositories(repositoryNames=[lab.repository_name])  # "myrepo"
REPOSITORY = found["repositories"][0]["repositoryUri"]  # step 20
with q1.attempt():
    # Checks it is yours (says what differs), then sets $REPOSITORY for the shell lines.
    REPOSITORY = labkit.tasks.task2.use_repository(lab, REPOSITORY)
