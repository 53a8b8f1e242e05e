import boto3

elbv2 = boto3.client("elbv2")
sd = boto3.client("servicediscovery")
with q3.attempt():
    # Service discovery: ask Cloud Map by names (no ids needed).
    reply = sd.discover_instances(
        NamespaceName="myprivatednsnamespace", ServiceName=lab.service_name
    )
    for instance in reply["Instances"]:
        attributes = instance["Attributes"]
        print(
            f"{instance['InstanceId']}: {attributes['AWS_INSTANCE_IPV4']}:"
            f"{attributes.get('AWS_INSTANCE_PORT')}"
        )
    dns_name = f"{lab.service_name}.myprivatednsnamespace"  # the SRV record's name
    print("Service discovery DNS name:", dns_name)
    # Step 58: the load balancer's DNS name.
    lb = elbv2.describe_load_balancers(Names=["Myloadbalancer"])["LoadBalancers"][0]
    print("Load balancer DNS name:", lb["DNSName"])
