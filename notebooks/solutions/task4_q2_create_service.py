import boto3

ecs = boto3.client("ecs")
elbv2 = boto3.client("elbv2")
sd = boto3.client("servicediscovery")
with q2.attempt():
    # Step 40's target group, by name; the API wants its ARN.
    target_group_arn = elbv2.describe_target_groups(Names=["myTargetgroup"])["TargetGroups"][0][
        "TargetGroupArn"
    ]
    # Exercise 4.1's discovery service, looked up (works on a re-run too).
    registry_arn = next(
        s["Arn"] for s in sd.list_services()["Services"] if s["Name"] == lab.service_name
    )
    container = {"containerName": "ecs-sample", "containerPort": 80}
    response = ecs.create_service(
        cluster="ECSCluster",  # step 36
        serviceName=lab.service_name,  # step 37: MYSERVICE<random number>
        taskDefinition="ecs-demo",  # Task 3's family: its highest ACTIVE revision
        desiredCount=1,  # step 37: number of tasks
        launchType="EC2",  # step 37
        # step 39: no role: ECS registers the tasks as its service-linked role
        loadBalancers=[{"targetGroupArn": target_group_arn, **container}],  # step 40
        serviceRegistries=[{"registryArn": registry_arn, **container}],  # steps 41-42
        tags=lab.tags("key"),  # the kit's tag: notebook 06 deletes only what carries it
    )
    print("Created", response["service"]["serviceArn"])
