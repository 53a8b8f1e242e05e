import boto3

import labkit

ecs = boto3.client("ecs")
with q2.attempt():
    # What the console would clean up (nulls, describe-only keys), listed with reasons:
    request = labkit.taskdef.request_from_file("my-task-definition.json", lab)
    request["requiresCompatibilities"] = ["EC2"]  # step 28: EC2
    response = ecs.register_task_definition(**request)  # steps 33–34
    definition = response["taskDefinition"]
    print(
        f"Registered {definition['family']}:{definition['revision']} "
        f"with image {definition['containerDefinitions'][0]['image']}"
    )
