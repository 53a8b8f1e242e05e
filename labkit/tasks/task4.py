"""Task 4 of the lab guide: the service behind the load balancer (steps 35–59).

- ``q1``: the service discovery service ``MYSERVICE<n>`` in the private DNS namespace
  ``myprivatednsnamespace``: SRV records, TTL 10 (steps 41–42);
- ``q2``: ``create_service`` with the wizard's values: cluster ``ECSCluster``,
  ``MYSERVICE<n>``, task definition ``ecs-demo``, 1 task, EC2, no ``role`` (ECS acts as
  its service-linked role, as it must with service discovery), the target group
  ``myTargetgroup`` → container ``ecs-sample`` port 80, and the service registry of
  ``q1`` (steps 35–48), running (steps 49–50);
- ``q3``: find it: Cloud Map's ``discover_instances`` answers with the task's address
  and port, and the load balancer's DNS name serves the page (steps 51–59).

Every check reads the real state (ECS, Cloud Map, ELB, HTTP), whoever made it and how.
"""

from __future__ import annotations

from typing import Any

from labkit import ecs, network
from labkit.display import balancing_name, short_arn
from labkit.errors import LabkitError, PrerequisiteError
from labkit.lab import Lab, service_arns
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____

__all__ = ["TASK", "q1", "q2", "q3", "____"]


# -- q1: the service discovery service (steps 41–42) ---------------------------------


def _discovery_config_verdict(lab: Lab, service_id: str, where: str) -> Verdict | None:
    """SRV records with TTL 10 (step 42), else what is wrong; None when right."""
    details = lab.servicediscovery.get_service(Id=service_id)["Service"]
    records = (details.get("DnsConfig") or {}).get("DnsRecords") or []
    ttl = lab.names.discovery_ttl_seconds
    recreate = (
        "A Cloud Map service's records are fixed once made here: delete it "
        f"(sd.delete_service(Id={service_id!r})) and run the exercise cell again."
    )
    kinds = [r.get("Type") for r in records]
    if "SRV" not in kinds:
        return Verdict.wrong(
            f"{where} has {', '.join(map(str, kinds)) or 'no'} DNS records, not SRV",
            "The tasks use bridge networking: they share their instance's IP address and "
            "get their own host port, so a name must give address AND port: an SRV record "
            f"(A records are for awsvpc tasks with their own IP). {recreate}",
        )
    srv = next(r for r in records if r.get("Type") == "SRV")
    if srv.get("TTL") != ttl:
        return Verdict.wrong(
            f"{where}'s SRV record has TTL {srv.get('TTL')} s, not {ttl} s",
            f"Step 42 sets TTL: {ttl} seconds: how long resolvers may cache the answer, so "
            f"a replaced task is found again within {ttl} s. {recreate}",
        )
    return None


def _discovery_created(lab: Lab) -> Verdict:
    namespace = ecs.find_namespace(lab)
    if namespace is None:
        raise PrerequisiteError(
            f"the private DNS namespace {lab.names.namespace} does not exist yet",
            fix="Run the cell with labkit.ecs.ensure_namespace(lab) first (the console "
            "wizard creates the namespace for you in step 41).",
        )
    found = ecs.find_discovery_service(lab, namespace["Id"])
    name = lab.service_name
    if found is None:
        others = [s["Name"] for s in ecs.discovery_services(lab, namespace["Id"])]
        if others:
            return Verdict.wrong(
                f"no discovery service named {name} in {lab.names.namespace} "
                f"(found: {', '.join(sorted(others))})",
                f"Name it like your ECS service, {name} (lab.service_name): its DNS name "
                f"becomes {name}.{lab.names.namespace}.",
            )
        return Verdict.wrong(
            f"no discovery service {name} in {lab.names.namespace} yet",
            "Call servicediscovery's create_service with Name=lab.service_name, the "
            "namespace's id, and DnsConfig with one SRV record of TTL 10.",
        )
    wrong = _discovery_config_verdict(lab, found["Id"], f"discovery service {name}")
    if wrong is not None:
        return wrong
    return Verdict.ok(
        f"discovery service {name} in {lab.names.namespace}: SRV records, TTL "
        f"{lab.names.discovery_ttl_seconds} s ({found['Arn']})"
    )


q1 = Exercise(
    task=4,
    number=1,
    title="the service discovery service",
    evaluate_fn=_discovery_created,
    hints=(
        "Cloud Map (boto3 client 'servicediscovery') has a create_service call: a name, "
        "the namespace's id, and a DnsConfig saying which DNS records to make.",
        "DnsConfig={'RoutingPolicy': 'MULTIVALUE', 'DnsRecords': [{'Type': ..., 'TTL': ...}]}: "
        "the record type that carries a port (bridge networking), and step 42's TTL.",
        "DnsRecords=[{'Type': 'SRV', 'TTL': 10}]",
    ),
    solution_=Solution(
        file="task4_q1_discovery_service.py",
        cli="aws servicediscovery create-service --name MYSERVICE<n> --namespace-id <ID> "
        "--dns-config 'RoutingPolicy=MULTIVALUE,DnsRecords=[{Type=SRV,TTL=10}]' "
        "--health-check-custom-config FailureThreshold=1",
        console="(in the Create Service wizard, step 2) Service discovery: Enable service "
        "discovery integration, namespace myprivatednsnamespace, DNS records TTL 10 "
        "(steps 41–42); the wizard makes the namespace and this service for you.",
    ),
    expected_errors={
        "ServiceAlreadyExists": "A discovery service with this name is already in the "
        "namespace (an earlier run). Cloud Map keeps one per name; nothing changed. Look "
        "it up in the next exercise instead of creating it again.",
        "NamespaceNotFound": "The namespace id is wrong: run the namespace cell above.",
        "InvalidInput": "Cloud Map refused a value: compare DnsConfig with the hint (q1.hint(2)).",
    },
)


# -- q2: the ECS service (steps 35–50) ------------------------------------------------


def _service_missing(lab: Lab) -> Verdict:
    names = (short_arn(arn) for arn in service_arns(lab))
    others = [name for name in names if name != lab.service_name]
    if others:
        return Verdict.wrong(
            f"service {lab.service_name} does not exist in {lab.names.cluster} "
            f"(found: {', '.join(sorted(others))})",
            f"Name the service exactly {lab.service_name} (lab.service_name, step 37): "
            "the kit and the later notebooks look for that name.",
        )
    return Verdict.wrong(
        f"service {lab.service_name} does not exist in {lab.names.cluster} yet",
        "Fill in the blanks of the create_service cell and run it (q2.hint(2) lists every value).",
    )


def _recreate(lab: Lab) -> str:
    return (
        "That cannot be changed on an existing service: delete it "
        f"(ecs.delete_service(cluster={lab.names.cluster!r}, service={lab.service_name!r}, "
        "force=True)), wait until it is gone, and run the cell again."
    )


def _service_verdict(lab: Lab, service: dict[str, Any]) -> Verdict | None:
    """What is wrong with the service's configuration (None when it is the wizard's)."""
    names = lab.names
    name = service["serviceName"]
    launch_type = service.get("launchType")
    if launch_type != "EC2":
        return Verdict.wrong(
            f"{name} has launch type {launch_type or 'none (a capacity provider)'}, not EC2",
            "Step 37 chooses the EC2 launch type: the tasks run on the cluster's container "
            f"instances. {_recreate(lab)}",
        )
    balancers = service.get("loadBalancers") or []
    if not balancers:
        return Verdict.wrong(
            f"{name} has no load balancer",
            "Steps 39–40 add it to the load balancer: loadBalancers=[{'targetGroupArn': "
            "<myTargetgroup's ARN>, 'containerName': 'ecs-sample', 'containerPort': 80}]. "
            + _recreate(lab),
        )
    group_arn = ecs.target_group(lab)["TargetGroupArn"]
    balancer = balancers[0]
    if balancer.get("targetGroupArn") != group_arn:
        return Verdict.wrong(
            f"{name} sends traffic from target group "
            f"{balancing_name(balancer.get('targetGroupArn'))}, "
            f"not {names.target_group}",
            f"Look up {names.target_group}'s ARN with "
            f"elbv2.describe_target_groups(Names=[{names.target_group!r}]) (step 52). "
            + _recreate(lab),
        )
    if (balancer.get("containerName"), balancer.get("containerPort")) != (
        names.container_name,
        80,
    ):
        return Verdict.wrong(
            f"{name}'s load balancer sends to container {balancer.get('containerName')!r} "
            f"port {balancer.get('containerPort')}, not {names.container_name!r} port 80",
            f"The container is {names.container_name!r} (the task definition's name) and it "
            f"listens on port 80 (its portMappings). {_recreate(lab)}",
        )
    registries = service.get("serviceRegistries") or []
    if not registries:
        return Verdict.wrong(
            f"{name} has no service registry (service discovery is off)",
            "Step 41 enables service discovery: serviceRegistries=[{'registryArn': <your "
            "discovery service's Arn>, 'containerName': 'ecs-sample', 'containerPort': 80}]. "
            + _recreate(lab),
        )
    registry_id = short_arn(registries[0].get("registryArn"))
    try:
        wrong = _discovery_config_verdict(lab, registry_id, "its discovery service")
    except lab.servicediscovery.exceptions.ServiceNotFound:
        wrong = Verdict.wrong(
            f"{name}'s service registry {registry_id} does not exist",
            "Use the Arn of the discovery service of Exercise 4.1. " + _recreate(lab),
        )
    if wrong is not None:
        return wrong
    if service.get("desiredCount") != 1:
        return Verdict.wrong(
            f"{name} asks for {service.get('desiredCount')} tasks, not 1",
            "Step 37: Number of tasks 1. Change it in place: "
            f"ecs.update_service(cluster={names.cluster!r}, service={name!r}, desiredCount=1).",
        )
    role = short_arn(service.get("roleArn") or "")
    if role and role != names.service_linked_role:
        # Only an endpoint that does not check (moto) gets here: ECS refuses the call.
        return Verdict.wrong(
            f"{name} uses the service role {role}, which ECS refuses for a service with "
            "service discovery",
            f"Leave role out: ECS then acts as its service-linked role "
            f"{names.service_linked_role} (step 39's {names.service_role} is what the console "
            "of the guide's day chose). " + _recreate(lab),
        )
    return None


def _service_running(lab: Lab) -> Verdict:
    service = ecs.find_service(lab)
    if service is None:
        return _service_missing(lab)
    wrong = _service_verdict(lab, service)
    if wrong is not None:
        return wrong
    if service["runningCount"] < 1:
        return Verdict.wrong(
            f"{service['serviceName']} runs no task yet ({service['pendingCount']} pending)",
            "Wait for a steady state (the services_stable waiter cell; minutes on AWS, "
            "seconds here), then check again. The Events view says what ECS is doing.",
        )
    return Verdict.ok(
        f"{service['serviceName']}: EC2, {short_arn(service['taskDefinition'])}, "
        f"{service['runningCount']}/{service['desiredCount']} running, behind "
        f"{lab.names.target_group} (ecs-sample:80), discovery on, as ECS's service-linked role"
    )


q2 = Exercise(
    task=4,
    number=2,
    title="create the service",
    evaluate_fn=_service_running,
    hints=(
        "The ECS client's create_service takes the wizard's choices as parameters: "
        "cluster, serviceName, taskDefinition, desiredCount, launchType, loadBalancers "
        "and serviceRegistries (no role: ECS uses its service-linked role).",
        "cluster 'ECSCluster' (step 36), serviceName lab.service_name, taskDefinition "
        "'ecs-demo' (the family: ECS takes its highest revision), desiredCount 1, "
        "launchType 'EC2' (step 37), no role (step 39: the service-linked role), and both "
        "lists with containerName 'ecs-sample', containerPort 80.",
        "target_group_arn = elbv2.describe_target_groups(Names=['myTargetgroup'])"
        "['TargetGroups'][0]['TargetGroupArn']; registry_arn: the 'Arn' of your discovery "
        "service (sd.list_services); then ecs.create_service(cluster='ECSCluster', "
        "serviceName=lab.service_name, taskDefinition='ecs-demo', desiredCount=1, "
        "launchType='EC2', loadBalancers=[...], serviceRegistries=[...])",
    ),
    solution_=Solution(
        file="task4_q2_create_service.py",
        cli="aws ecs create-service --cluster ECSCluster --service-name MYSERVICE<n> "
        "--task-definition ecs-demo --desired-count 1 --launch-type EC2 "
        "--load-balancers targetGroupArn=<TG ARN>,containerName=ecs-sample,containerPort=80 "
        "--service-registries registryArn=<REGISTRY ARN>,containerName=ecs-sample,"
        "containerPort=80\n"
        "aws ecs wait services-stable --cluster ECSCluster --services MYSERVICE<n>",
        console="ECS → Clusters → ECSCluster → Services → Create: EC2, MYSERVICE<n>, 1 task "
        "→ Next → Network Load Balancer (today's console picks no role: ECS's service-linked "
        "role), Add to load balancer "
        "(ecs-sample:80 → myTargetgroup), service discovery (steps 35–43) → Next (no auto "
        "scaling, step 44) → Create Service → View Service (steps 45–48).",
    ),
    expected_errors={
        "InvalidParameterException": "ECS refused a value; 'You cannot specify an IAM role "
        "for services that require a service linked role' means: leave role out (service "
        "discovery needs ECS's own role). If the message is 'Creation of "
        "service was not idempotent', a service with this name is already ACTIVE in the "
        "cluster (an earlier run of this cell). ECS never makes a second service of the "
        "same name, nor changes the existing one here (that is update_service). Nothing "
        "changed: the check below looks at the service that exists.",
        "ClusterNotFoundException": "The cluster is ECSCluster (step 36).",
        "ClientException": "ECS refused the request: the message names the parameter "
        "(task definition, role…).",
        "AccessDeniedException": "Your credentials may not do this; in this lab only the "
        "guide's actions are allowed.",
    },
)


# -- q3: find it and open it (steps 51–59) ------------------------------------------


def _found_and_served(lab: Lab) -> Verdict:
    if ecs.find_service(lab) is None:
        return Verdict.wrong(f"service {lab.service_name} does not exist yet", "Do Exercise 4.2.")
    reply = lab.servicediscovery.discover_instances(
        NamespaceName=lab.names.namespace, ServiceName=lab.service_name
    )
    instances = reply.get("Instances", [])
    with_port = [i for i in instances if "AWS_INSTANCE_PORT" in i.get("Attributes", {})]
    if not with_port:
        return Verdict.wrong(
            f"discovery finds {len(instances)} instance(s) of {lab.service_name} with a port",
            "ECS registers each RUNNING task in Cloud Map: wait for the steady state, then "
            "check again.",
        )
    url = network.load_balancer_url(lab)
    try:
        page = network.fetch_page(url, attempts=5, delay=2)
    except LabkitError as exc:
        return Verdict.wrong(
            f"the load balancer did not serve the page ({exc.why})",
            "Look at the Targets view: a target must be healthy before the load balancer "
            "sends traffic to it. Then the Events view: is the task running?",
        )
    if page.status != 200:
        return Verdict.wrong(
            f"the load balancer answered HTTP {page.status}",
            "The task's web server answered with an error: look at the Events and Tasks "
            "views, and the image of Task 2.",
        )
    first = with_port[0]["Attributes"]
    return Verdict.ok(
        f"{lab.service_name}.{lab.names.namespace} → "
        f"{first.get('AWS_INSTANCE_IPV4')}:{first['AWS_INSTANCE_PORT']} "
        f"({len(with_port)} instance(s)); the load balancer serves the page (HTTP 200, "
        f"title {page.title!r})"
    )


q3 = Exercise(
    task=4,
    number=3,
    title="find the service and open its page",
    evaluate_fn=_found_and_served,
    hints=(
        "Cloud Map's discover_instances takes the namespace's NAME and the service's NAME "
        "(no ids); the load balancer's DNS name is in describe_load_balancers.",
        "sd.discover_instances(NamespaceName='myprivatednsnamespace', "
        "ServiceName=lab.service_name); elbv2.describe_load_balancers(Names=["
        "'Myloadbalancer'])['LoadBalancers'][0]['DNSName'].",
        "The DNS name of your service is f'{lab.service_name}.myprivatednsnamespace'.",
    ),
    solution_=Solution(
        file="task4_q3_find_service.py",
        cli="aws servicediscovery discover-instances --namespace-name myprivatednsnamespace "
        "--service-name MYSERVICE<n>\n"
        "aws elbv2 describe-load-balancers --names Myloadbalancer "
        "--query 'LoadBalancers[0].DNSName' --output text",
        console="Service → Details → target group myTargetgroup → Targets (steps 51–54); "
        "Details → Myloadbalancer → Description: copy the DNS name, open it in a new tab "
        "(steps 55–59).",
    ),
    expected_errors={
        "NamespaceNotFound": "No namespace of that name: it is myprivatednsnamespace.",
        "ServiceNotFound": "No discovery service of that name: it is lab.service_name.",
        "LoadBalancerNotFound": "The load balancer is Myloadbalancer (step 56).",
    },
)

TASK = Task(number=4, title="service behind the load balancer", exercises=(q1, q2, q3))
