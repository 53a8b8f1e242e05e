import boto3

import labkit

sd = boto3.client("servicediscovery")
elbv2 = boto3.client("elbv2")
instances, dns_name = ____, ____
with q5.attempt():
    # Service discovery: ask Cloud Map by names (no ids needed).
    instances = sd.discover_instances(
        NamespaceName="myprivatednsnamespace", ServiceName=lab.service_name
    )["Instances"]
    for instance in instances:
        attributes = instance["Attributes"]
        print(f"{attributes['AWS_INSTANCE_IPV4']}:{attributes['AWS_INSTANCE_PORT']}")
    # Step 58: the load balancer's DNS name; step 59: open it.
    found = elbv2.describe_load_balancers(Names=["Myloadbalancer"])
    dns_name = found["LoadBalancers"][0]["DNSName"]
    print("Load balancer:", dns_name)
    page = labkit.network.fetch_page(labkit.network.load_balancer_url(lab, dns_name))
    print(page)
