import time

import boto3

import labkit

sd = boto3.client("servicediscovery")
vpc_id = labkit.ecs.namespace_vpc_id(lab)  # the lab's VPC: where the tasks run
namespace_id = ____
with q1.attempt():
    try:
        operation_id = sd.create_private_dns_namespace(
            Name="myprivatednsnamespace", Vpc=vpc_id, Tags=lab.tags()
        )["OperationId"]
        # Asynchronous: ask until the operation ends (seconds here, a minute or so on AWS).
        operation = sd.get_operation(OperationId=operation_id)["Operation"]
        while operation["Status"] not in ("SUCCESS", "FAIL"):
            time.sleep(2)
            operation = sd.get_operation(OperationId=operation_id)["Operation"]
        print("Operation:", operation["Status"], operation.get("ErrorMessage", ""))
        namespace_id = operation["Targets"]["NAMESPACE"]
    except sd.exceptions.NamespaceAlreadyExists as exc:  # a re-run: it is there already
        namespace_id = exc.response["NamespaceId"]
    print("Namespace:", namespace_id)
