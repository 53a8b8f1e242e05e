import boto3

import labkit

ecs = boto3.client("ecs")
elbv2 = boto3.client("elbv2")
registry_arn = labkit.tasks.task4.discovery_service_arn(lab)  # Exercise 4.2's
service_arn = ____
with q3.attempt():
    # Step 40's target group, by name; the API wants its ARN.
    found = elbv2.describe_target_groups(Names=["myTargetgroup"])
    target_group_arn = found["TargetGroups"][0]["TargetGroupArn"]
    container = {"containerName": "ecs-sample", "containerPort": 80}  # the task definition's
    try:
        response = ecs.create_service(
            cluster="ECSCluster",  # step 36
            serviceName=lab.service_name,  # step 37: MYSERVICE<random number>
            taskDefinition="ecs-demo",  # Task 3's family: its highest ACTIVE revision
            desiredCount=1,  # step 37
            launchType="EC2",  # step 37
            # step 39: no role: ECS registers the tasks as its service-linked role
            loadBalancers=[{"targetGroupArn": target_group_arn, **container}],  # step 40
            serviceRegistries=[{"registryArn": registry_arn, **container}],  # steps 41-42
            tags=lab.tags("key"),
        )
        service_arn = response["service"]["serviceArn"]
    except ecs.exceptions.InvalidParameterException as exc:
        if "not idempotent" not in str(exc):
            raise  # another cause: q3.attempt() explains it
        # A re-run: ECS keeps one service of a name; look it up.
        print("Exists already:", exc)
        found = ecs.describe_services(cluster="ECSCluster", services=[lab.service_name])
        service_arn = found["services"][0]["serviceArn"]
    print("Service:", service_arn)
