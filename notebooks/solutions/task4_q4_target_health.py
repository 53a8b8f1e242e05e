import time

import boto3

elbv2 = boto3.client("elbv2")
found = elbv2.describe_target_groups(Names=["myTargetgroup"])
target_group_arn = found["TargetGroups"][0]["TargetGroupArn"]
health = ____
with q4.attempt():
    for _ in range(60):  # an NLB needs minutes on AWS, seconds here
        health = elbv2.describe_target_health(TargetGroupArn=target_group_arn)[
            "TargetHealthDescriptions"
        ]
        for target in health:
            state = target["TargetHealth"]
            print(
                f"{target['Target']['Id']}:{target['Target']['Port']} {state['State']} "
                f"{state.get('Reason', '')}"
            )
        if any(t["TargetHealth"]["State"] == "healthy" for t in health):
            break
        time.sleep(5)
