import boto3

import labkit

ecs = boto3.client("ecs")
stopped_arn = ____
with q2.attempt():
    running = ecs.list_tasks(cluster="ECSCluster", serviceName=lab.service_name)["taskArns"]
    stopped_arn = running[0]
    labkit.ecs.mark_change(lab)
    ecs.stop_task(cluster="ECSCluster", task=stopped_arn, reason="Stopped in notebook 05")
    print(f"Stopped {stopped_arn}")
    labkit.ecs.watch(lab, until=labkit.ecs.replaced(lab, stopped_arn), timeout=180)
