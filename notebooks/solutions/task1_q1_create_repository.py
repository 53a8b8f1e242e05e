import boto3

ecr = boto3.client("ecr")
with q1.attempt():
    response = ecr.create_repository(
        repositoryName=lab.repository_name,  # "myrepo", step 6
        tags=lab.tags(),  # the kit's tag: notebook 06 deletes only what carries it
    )
    print("Repository URI (step 8):", response["repository"]["repositoryUri"])
