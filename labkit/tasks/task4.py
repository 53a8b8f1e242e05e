"""Task 4 of the lab guide: the service behind the load balancer (steps 35–59).

- ``q1``: the private DNS namespace ``myprivatednsnamespace`` (step 41), created with
  ``create_private_dns_namespace`` and waited for with ``get_operation``;
- ``q2``: the service discovery service ``MYSERVICE<n>`` in it: SRV records, TTL 10
  (steps 41–42);
- ``q3``: ``create_service`` with the wizard's values and no ``role`` (ECS acts as its
  service-linked role, as it must with service discovery), running (steps 35–50);
- ``q4``: ``describe_target_health`` until the task's target is healthy (steps 51–55);
- ``q5``: ``discover_instances`` and the load balancer's DNS name, and the page (56–59).

Every check reads the real state (ECS, Cloud Map, ELB, HTTP). Where the real state cannot
tell that the learner made the step (a lookup, a wait, an object an earlier catch-up made),
the check also takes the learner's own result: ``q1.check(namespace_id)``.
"""

from __future__ import annotations

from typing import Any

from labkit import ecs, network
from labkit.display import note
from labkit.errors import LabkitError, PrerequisiteError
from labkit.lab import Lab
from labkit.tasks.exercise import Exercise, Solution, Task, Verdict, ____
from labkit.tasks.service_checks import (
    discovery_config_verdict,
    explain_create_service,
    service_answer,
    service_running,
)
from labkit.tasks.understanding import Question, Quiz

__all__ = ["TASK", "q1", "q2", "q3", "q4", "q5", "quiz", "____"]


def _answer_text(answer: Any) -> str:
    return str(answer)[:120]


# -- q1: the namespace (step 41) -----------------------------------------------------


def namespace_id(lab: Lab) -> Any:
    """The lab namespace's id, for the cells after Exercise 4.1. Without it: a note naming
    Exercise 4.1, and the blank ``____`` (the cell then says it is not done yet)."""
    return _or_blank(_require_namespace_id, lab)


def discovery_service_arn(lab: Lab) -> Any:
    """Your discovery service's ARN, for the cells after Exercise 4.2. Without it: a note
    naming Exercise 4.2, and the blank ``____``."""
    return _or_blank(_require_discovery_service_arn, lab)


def _or_blank(lookup: Any, lab: Lab) -> Any:
    try:
        return lookup(lab)
    except PrerequisiteError as exc:
        note(f"{exc.what} {exc.why} {exc.fix}", "⏳")
        return ____


def _require_namespace_id(lab: Lab) -> str:
    namespace = ecs.find_namespace(lab)
    if namespace is None:
        raise PrerequisiteError(
            f"The private DNS namespace {lab.names.namespace} does not exist yet.",
            why="Exercise 4.1 creates it; this cell uses it.",
            fix="Do Exercise 4.1 first (or catch up: q1.solve()), then run this cell again.",
        )
    return namespace["Id"]


def _namespace_exists(lab: Lab) -> Verdict:
    namespace = ecs.find_namespace(lab)
    if namespace is None:
        return Verdict.wrong(
            f"no namespace {lab.names.namespace} yet",
            "Call servicediscovery's create_private_dns_namespace with Name="
            f"{lab.names.namespace!r} and Vpc=vpc_id, then ask get_operation until its "
            "Status is SUCCESS (q1.hint(2)).",
        )
    details = lab.servicediscovery.get_namespace(Id=namespace["Id"])["Namespace"]
    if details.get("Type") != "DNS_PRIVATE":
        return Verdict.wrong(
            f"{lab.names.namespace} is a {details.get('Type')} namespace, not a private DNS one",
            "Step 41's namespace answers DNS inside the VPC: create_private_dns_namespace. "
            f"Delete this one (sd.delete_namespace(Id={namespace['Id']!r})) and try again.",
        )
    return Verdict.ok(f"private DNS namespace {lab.names.namespace} ({namespace['Id']})")


def _namespace_answer(lab: Lab, answer: Any) -> Verdict:
    real = _require_namespace_id(lab)
    if answer == real:
        return Verdict.ok(f"private DNS namespace {lab.names.namespace}: {real}")
    text = _answer_text(answer)
    if isinstance(answer, str) and answer.startswith("ns-"):
        return Verdict.wrong(
            f"{text} is another namespace's id", f"Yours is {lab.names.namespace}."
        )
    return Verdict.wrong(
        f"namespace_id is {text!r}, not the namespace's id",
        "create_private_dns_namespace answers with an OperationId, not the namespace: "
        "get_operation(OperationId=…)['Operation'] has Status and, once SUCCESS, "
        "Targets['NAMESPACE']: that is the id.",
    )


q1 = Exercise(
    task=4,
    number=1,
    title="the private DNS namespace",
    evaluate_fn=_namespace_exists,
    answer_fn=_namespace_answer,
    hints=(
        "Cloud Map (boto3 client 'servicediscovery') makes a private DNS zone with "
        "create_private_dns_namespace: a name and the VPC it answers in. It is "
        "asynchronous: it returns an OperationId.",
        "sd.create_private_dns_namespace(Name='myprivatednsnamespace', Vpc=vpc_id, "
        "Tags=lab.tags())['OperationId']; then repeat sd.get_operation(OperationId=…)"
        "['Operation'] (a few seconds apart) until its 'Status' is 'SUCCESS'.",
        "namespace_id = operation['Targets']['NAMESPACE']. Re-run after it exists? "
        "Cloud Map answers NamespaceAlreadyExists with the id: "
        "exc.response['NamespaceId'].",
    ),
    solution_=Solution(
        file="task4_q1_namespace.py",
        cli="aws servicediscovery create-private-dns-namespace --name myprivatednsnamespace "
        "--vpc <VPC ID>\n"
        "aws servicediscovery get-operation --operation-id <OPERATION ID>  # until SUCCESS",
        console="(Create Service wizard, step 41) Service discovery: Enable service discovery "
        "integration, create a new private namespace myprivatednsnamespace: the wizard "
        "creates it with the service. Or: Cloud Map → Create namespace → API calls and DNS "
        "queries in VPCs.",
    ),
    expected_errors={
        "NamespaceAlreadyExists": "It exists already (an earlier run): nothing changed. "
        "Its id is in the error: exc.response['NamespaceId'] (q1.hint(3)).",
        "ConflictingDomainExists": "Another namespace of this name exists in the VPC.",
        "InvalidInput": "Cloud Map refused a value: Name is 'myprivatednsnamespace', Vpc a "
        "VPC id (vpc-…).",
    },
)


# -- q2: the discovery service (steps 41–42) -----------------------------------------


def _discovery_created(lab: Lab) -> Verdict:
    found = ecs.find_discovery_service(lab, _require_namespace_id(lab))
    name = lab.service_name
    if found is None:
        others = [s["Name"] for s in ecs.discovery_services(lab, _require_namespace_id(lab))]
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
    wrong = discovery_config_verdict(lab, found["Id"], f"discovery service {name}")
    if wrong is not None:
        return wrong
    return Verdict.ok(
        f"discovery service {name} in {lab.names.namespace}: SRV records, TTL "
        f"{lab.names.discovery_ttl_seconds} s ({found['Arn']})"
    )


def _require_discovery_service_arn(lab: Lab) -> str:
    found = ecs.find_discovery_service(lab, _require_namespace_id(lab))
    if found is None:
        raise PrerequisiteError(
            f"Your discovery service {lab.service_name} does not exist yet.",
            why="Exercise 4.2 creates it; the service's serviceRegistries names it by ARN.",
            fix="Do Exercise 4.2 first (or catch up: q2.solve()), then run this cell again.",
        )
    return found["Arn"]


def _discovery_answer(lab: Lab, answer: Any) -> Verdict:
    real = _require_discovery_service_arn(lab)
    if answer == real:
        return Verdict.ok(f"discovery service {lab.service_name}: {real}")
    return Verdict.wrong(
        f"registry_arn is {_answer_text(answer)!r}, not your discovery service's ARN",
        "create_service answers {'Service': {'Id': …, 'Arn': …}}: keep the 'Arn' (ECS "
        "names the registry by ARN). A re-run? ServiceAlreadyExists: look it up with "
        "sd.list_services.",
    )


q2 = Exercise(
    task=4,
    number=2,
    title="the service discovery service",
    evaluate_fn=_discovery_created,
    answer_fn=_discovery_answer,
    hints=(
        "Cloud Map (boto3 client 'servicediscovery') has a create_service call: a name, "
        "the namespace's id, and a DnsConfig saying which DNS records to make.",
        "DnsConfig={'RoutingPolicy': 'MULTIVALUE', 'DnsRecords': [{'Type': ..., 'TTL': ...}]}: "
        "the record type that carries a port (bridge networking), and step 42's TTL.",
        "sd.create_service(Name=lab.service_name, NamespaceId=namespace_id, DnsConfig="
        "{'RoutingPolicy': 'MULTIVALUE', 'DnsRecords': [{'Type': 'SRV', 'TTL': 10}]}, "
        "HealthCheckCustomConfig={'FailureThreshold': 1}, Tags=lab.tags())['Service']['Arn']",
    ),
    solution_=Solution(
        file="task4_q2_discovery_service.py",
        cli="aws servicediscovery create-service --name MYSERVICE<n> --namespace-id <ID> "
        "--dns-config 'RoutingPolicy=MULTIVALUE,DnsRecords=[{Type=SRV,TTL=10}]' "
        "--health-check-custom-config FailureThreshold=1",
        console="(in the Create Service wizard, step 2) Service discovery: Enable service "
        "discovery integration, namespace myprivatednsnamespace, DNS records TTL 10 "
        "(steps 41–42); the wizard makes the namespace and this service for you.",
    ),
    expected_errors={
        "ServiceAlreadyExists": "A discovery service with this name is already in the "
        "namespace (an earlier run). Cloud Map keeps one per name; nothing changed. Its "
        "ARN: the 'Arn' of the service of that name in sd.list_services()['Services'].",
        "NamespaceNotFound": "The namespace id is wrong: it is Exercise 4.1's namespace_id.",
        "InvalidInput": "Cloud Map refused a value: compare DnsConfig with the hint (q2.hint(2)).",
    },
)


# -- q3: the ECS service (steps 35–50) ------------------------------------------------


q3 = Exercise(
    task=4,
    number=3,
    title="create the service",
    evaluate_fn=service_running,
    answer_fn=service_answer,
    explain_refusal=explain_create_service,
    hints=(
        "The ECS client's create_service takes the wizard's choices as parameters: "
        "cluster, serviceName, taskDefinition, desiredCount, launchType, loadBalancers "
        "and serviceRegistries (no role: ECS uses its service-linked role).",
        "cluster 'ECSCluster' (step 36), serviceName lab.service_name, taskDefinition "
        "'ecs-demo' (the family: ECS takes its highest revision), desiredCount 1, "
        "launchType 'EC2' (step 37), no role (step 39: the service-linked role), and both "
        "lists with containerName 'ecs-sample', containerPort 80.",
        "target_group_arn = elbv2.describe_target_groups(Names=['myTargetgroup'])"
        "['TargetGroups'][0]['TargetGroupArn']; then ecs.create_service(cluster='ECSCluster', "
        "serviceName=lab.service_name, taskDefinition='ecs-demo', desiredCount=1, "
        "launchType='EC2', loadBalancers=[...], serviceRegistries=[...])",
    ),
    solution_=Solution(
        file="task4_q3_create_service.py",
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
        "ClusterNotFoundException": "The cluster is ECSCluster (step 36).",
        "ClientException": "ECS refused the request: the message names the parameter "
        "(task definition, role…).",
        "AccessDeniedException": "Your credentials may not do this; in this lab only the "
        "guide's actions are allowed.",
    },
)


# -- q4: the target's health (steps 51–55) ------------------------------------------


def _service_targets(lab: Lab) -> list[dict[str, Any]]:
    """The target group's targets that are the service's running tasks (instance, port)."""
    bound = set()
    for task in ecs.tasks(lab):
        instance = ecs.task_instance_id(lab, task)
        for container in task.get("containers", []):
            for binding in container.get("networkBindings", []):
                bound.add((instance, binding.get("hostPort")))
    return [
        t for t in ecs.target_health(lab) if (t["Target"]["Id"], t["Target"].get("Port")) in bound
    ]


def _target_healthy(lab: Lab) -> Verdict:
    if ecs.find_service(lab) is None:
        return Verdict.wrong(f"service {lab.service_name} does not exist yet", "Do Exercise 4.3.")
    targets = _service_targets(lab)
    healthy = [t for t in targets if t["TargetHealth"]["State"] == "healthy"]
    if not healthy:
        states = ", ".join(
            f"{t['TargetHealth']['State']} ({t['TargetHealth'].get('Reason', '-')})"
            for t in targets
        )
        return Verdict.wrong(
            f"no target of {lab.service_name} is healthy yet ({states or 'none registered'})",
            "An NLB checks each target every 30 s by default (5–300 s) and wants 5 passes "
            "in a row for TCP: minutes on AWS. Ask describe_target_health again until "
            "State is 'healthy'; Reason says why not yet.",
        )
    target = healthy[0]["Target"]
    return Verdict.ok(f"target {target['Id']}:{target.get('Port')} is healthy")


def _health_answer(lab: Lab, answer: Any) -> Verdict:
    if isinstance(answer, dict):
        answer = answer.get("TargetHealthDescriptions", answer)
    if not isinstance(answer, list):
        return Verdict.wrong(
            f"health is {_answer_text(answer)!r}, not describe_target_health's answer",
            "Keep reply['TargetHealthDescriptions'] (a list, one entry per target).",
        )
    real = {(t["Target"]["Id"], t["Target"].get("Port")) for t in _service_targets(lab)}
    seen = [
        t
        for t in answer
        if isinstance(t, dict)
        and (t.get("Target", {}).get("Id"), t.get("Target", {}).get("Port")) in real
        and t.get("TargetHealth", {}).get("State") == "healthy"
    ]
    if not seen:
        return Verdict.wrong(
            "your answer shows no healthy target of your service's running task",
            "Call describe_target_health again (in a loop, a few seconds apart) until your "
            "target's TargetHealth State is 'healthy'.",
        )
    target = seen[0]["Target"]
    return Verdict.ok(f"you saw target {target['Id']}:{target.get('Port')} healthy")


q4 = Exercise(
    task=4,
    number=4,
    title="the target's health",
    evaluate_fn=_target_healthy,
    answer_fn=_health_answer,
    hints=(
        "The load balancer's client (elbv2) answers describe_target_health for a target "
        "group (by ARN): one entry per target, with TargetHealth State and Reason.",
        "health = elbv2.describe_target_health(TargetGroupArn=target_group_arn)"
        "['TargetHealthDescriptions']; repeat (time.sleep(5)) until any entry's "
        "['TargetHealth']['State'] == 'healthy'.",
        "Print each target's ['Target']['Id'], ['Target']['Port'], "
        "['TargetHealth']['State'] and .get('Reason') (no Reason once healthy).",
    ),
    solution_=Solution(
        file="task4_q4_target_health.py",
        cli="aws elbv2 describe-target-health --target-group-arn <TG ARN>",
        console="Service → Details → target group myTargetgroup → Targets (steps 51–54): "
        "each target's Health status and details.",
    ),
    expected_errors={
        "TargetGroupNotFound": "No target group of that ARN: look it up by name (myTargetgroup).",
        "ValidationError": "TargetGroupArn is an ARN (arn:aws:elasticloadbalancing:…).",
    },
)


# -- q5: find it and open it (steps 55–59) ------------------------------------------


def _discovered(lab: Lab) -> list[dict[str, Any]]:
    reply = lab.servicediscovery.discover_instances(
        NamespaceName=lab.names.namespace, ServiceName=lab.service_name
    )
    return [i for i in reply.get("Instances", []) if "AWS_INSTANCE_PORT" in i.get("Attributes", {})]


def _found_and_served(lab: Lab) -> Verdict:
    if ecs.find_service(lab) is None:
        return Verdict.wrong(f"service {lab.service_name} does not exist yet", "Do Exercise 4.3.")
    with_port = _discovered(lab)
    if not with_port:
        return Verdict.wrong(
            f"discovery finds no instance of {lab.service_name} with a port",
            "ECS registers each RUNNING task in Cloud Map: wait for the steady state, then "
            "check again.",
        )
    try:
        page = network.fetch_page(network.load_balancer_url(lab), attempts=5, delay=2)
    except LabkitError as exc:
        return Verdict.wrong(
            f"the load balancer did not serve the page ({exc.why})",
            "Exercise 4.4: a target must be healthy before the load balancer sends traffic "
            "to it. Then the Events view: is the task running?",
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


def _found_answer(lab: Lab, instances: Any, dns_name: Any = ____) -> Verdict:
    if isinstance(instances, dict):
        instances = instances.get("Instances", instances)
    real = {i["InstanceId"] for i in _discovered(lab)}
    theirs = (
        {i.get("InstanceId") for i in instances if isinstance(i, dict)}
        if isinstance(instances, list)
        else set()
    )
    if not theirs & real:
        return Verdict.wrong(
            f"instances is {_answer_text(instances)!r}: none of your service's running tasks",
            "Keep discover_instances(...)['Instances']: one entry per task, with "
            "Attributes AWS_INSTANCE_IPV4 and AWS_INSTANCE_PORT.",
        )
    wanted = network.load_balancer_dns(lab)
    if dns_name != wanted:
        return Verdict.wrong(
            f"dns_name is {_answer_text(dns_name)!r}, not {lab.names.load_balancer}'s DNS name",
            "Step 58: describe_load_balancers(Names=['Myloadbalancer'])['LoadBalancers'][0]"
            "['DNSName'].",
        )
    return _found_and_served(lab)


q5 = Exercise(
    task=4,
    number=5,
    title="find the service and open its page",
    evaluate_fn=_found_and_served,
    answer_fn=_found_answer,
    hints=(
        "Cloud Map's discover_instances takes the namespace's NAME and the service's NAME "
        "(no ids); the load balancer's DNS name is in describe_load_balancers.",
        "instances = sd.discover_instances(NamespaceName='myprivatednsnamespace', "
        "ServiceName=lab.service_name)['Instances']; dns_name = "
        "elbv2.describe_load_balancers(Names=['Myloadbalancer'])['LoadBalancers'][0]"
        "['DNSName'].",
        "Then page = labkit.network.fetch_page(labkit.network.load_balancer_url(lab, "
        "dns_name)) and q5.check(instances, dns_name).",
    ),
    solution_=Solution(
        file="task4_q5_find_service.py",
        cli="aws servicediscovery discover-instances --namespace-name myprivatednsnamespace "
        "--service-name MYSERVICE<n>\n"
        "aws elbv2 describe-load-balancers --names Myloadbalancer "
        "--query 'LoadBalancers[0].DNSName' --output text\n"
        "curl http://<DNS name>/",
        console="Details → Myloadbalancer → Description: copy the DNS name, open it in a "
        "new tab (steps 55–59).",
    ),
    expected_errors={
        "NamespaceNotFound": "No namespace of that name: it is myprivatednsnamespace.",
        "ServiceNotFound": "No discovery service of that name: it is lab.service_name.",
        "LoadBalancerNotFound": "The load balancer is Myloadbalancer (step 56).",
    },
)


# -- check your understanding --------------------------------------------------------

quiz = Quiz(
    4,
    [
        Question(
            "Why does your discovery service use SRV records, not A records?",
            {
                "a": "SRV records are cheaper than A records",
                "b": "the tasks use bridge networking: they share the instance's address, "
                "so a name must carry the port too, and only SRV does",
                "c": "A records cannot have a TTL of 10 seconds",
            },
            "b",
            "An A record gives an address only. awsvpc tasks have their own address and "
            "may use A or SRV; bridge and host tasks, SRV only. The record type of a Cloud "
            "Map service cannot be changed later (its TTL can, with update_service).",
        ),
        Question(
            "Your new task runs, but describe_target_health says 'initial' for a minute "
            "or more on AWS. Why?",
            {
                "a": "the NLB checks a target every 30 s by default and wants 5 healthy "
                "checks in a row (TCP) before it sends traffic",
                "b": "the image is still being pushed",
                "c": "Cloud Map's TTL of 10 s delays the load balancer",
            },
            "a",
            "Interval 5–300 s (default 30), TCP healthy threshold default 5: until then the "
            "target gets no traffic (unless every target is unhealthy: the NLB fails open).",
        ),
        Question(
            "Why does your create_service call pass no role, where step 39 picks ecsServiceRole?",
            {
                "a": "the role is given later with update_service",
                "b": "a service with service discovery must use ECS's service-linked role "
                "AWSServiceRoleForECS; ECS refuses a role there",
                "c": "roles are only for Fargate",
            },
            "b",
            "ECS answers InvalidParameterException: 'You cannot specify an IAM role for "
            "services that require a service linked role.' The guide's console of its day "
            "still asked for a role.",
        ),
    ],
)

TASK = Task(number=4, title="service behind the load balancer", exercises=(q1, q2, q3, q4, q5))
