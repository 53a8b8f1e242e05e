import boto3

import labkit

sd = boto3.client("servicediscovery")
with q1.attempt():
    namespace_id = labkit.ecs.ensure_namespace(lab)  # the wizard's part (the cell above)
    reply = sd.create_service(
        Name=lab.service_name,  # MYSERVICE<n>: the DNS name becomes MYSERVICE<n>.<namespace>
        NamespaceId=namespace_id,
        DnsConfig={
            "RoutingPolicy": "MULTIVALUE",  # answer with every healthy task
            "DnsRecords": [{"Type": "SRV", "TTL": 10}],  # step 42; SRV: address AND port
        },
        HealthCheckCustomConfig={"FailureThreshold": 1},  # ECS reports the tasks' health
        Tags=lab.tags(),  # the kit's tag: notebook 06 deletes only what carries it
    )
    print("Discovery service:", reply["Service"]["Arn"])
