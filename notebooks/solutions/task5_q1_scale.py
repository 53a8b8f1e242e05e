import boto3

import labkit

ecs = boto3.client("ecs")
placement_event = ____
with q1.attempt():
    labkit.ecs.mark_change(lab)  # what ECS writes from here on is news for watch()
    response = ecs.update_service(cluster="ECSCluster", service=lab.service_name, desiredCount=3)
    print(f"Desired: {response['service']['desiredCount']}")
    labkit.ecs.watch(lab, until=labkit.ecs.steady_or_unplaceable, timeout=120)
    service = ecs.describe_services(cluster="ECSCluster", services=[lab.service_name])
    events = service["services"][0]["events"]  # newest first
    placement_event = next(e["message"] for e in events if "unable to place" in e["message"])
    print(f"ECS: {placement_event}")
    # The third place never frees up: back to 2 tasks, one per instance.
    ecs.update_service(cluster="ECSCluster", service=lab.service_name, desiredCount=2)
