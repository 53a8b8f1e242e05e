import boto3

import labkit

ecs = boto3.client("ecs")
new_arn = labkit.taskdef.latest(lab)["taskDefinitionArn"]  # the revision you registered
probe = labkit.network.probe_page(lab)  # fetches the page all through the rollout
with q3.attempt():
    response = ecs.update_service(
        cluster="ECSCluster",
        service=lab.service_name,
        taskDefinition=new_arn,
        desiredCount=2,
        # With 2 tasks holding both port 80s, ECS may stop one old task first (1 of 2
        # healthy is 50 %), start a new one in its place, then do the same again.
        deploymentConfiguration={"minimumHealthyPercent": 50, "maximumPercent": 200},
        forceNewDeployment=True,  # a re-run rolls out again
    )
    print(f"Rolling out {response['service']['taskDefinition']}")
    labkit.ecs.watch(lab, until=labkit.ecs.rolled_out(new_arn), timeout=300)
