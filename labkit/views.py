"""Console-like views of the lab's resources, each a table with a plain-text twin.

The notebooks call them as ``labkit.views.*``; the showing itself is :mod:`labkit.display`.
"""

from __future__ import annotations

from typing import Any

from labkit import ecr, ecs, taskdef
from labkit.display import (  # noqa: F401 — the diagrams as labkit.views.*
    balancing_name,
    lab_diagram,
    load_balancer_diagram,
    note,
    short_arn,
    show,
    table,
    table_markup,
)
from labkit.lab import Lab


def identity_view(lab: Lab) -> None:
    """Who am I: the STS caller identity, and the backend (no key material, ever)."""
    ident = lab.identity
    table(
        "Who am I (sts get-caller-identity)",
        ["backend", "account", "region", "caller ARN"],
        [[lab.backend.value, ident["account"], lab.region, ident["arn"]]],
    )


def environment_tour(lab: Lab) -> None:
    """The pre-provisioned pieces the lab relies on: cluster, instances, roles, NLB."""
    names = lab.names
    cluster = lab.ecs.describe_clusters(clusters=[names.cluster])["clusters"]
    instances = lab.ecs.list_container_instances(cluster=names.cluster)["containerInstanceArns"]
    table(
        "Cluster (a logical group of container instances)",
        ["name", "status", "container instances", "running tasks"],
        [
            [c["clusterName"], c["status"], len(instances), c.get("runningTasksCount", 0)]
            for c in cluster
        ],
    )
    if instances:
        described = lab.ecs.describe_container_instances(
            cluster=names.cluster, containerInstances=instances
        )["containerInstances"]
        table(
            "Container instances (EC2 instances running the ECS agent)",
            ["id", "EC2 instance", "status", "agent connected"],
            [
                [
                    short_arn(i["containerInstanceArn"]),
                    i.get("ec2InstanceId"),
                    i.get("status"),
                    i.get("agentConnected"),
                ]
                for i in described
            ],
        )
    roles = []
    for role in (names.instance_role, names.service_role):
        try:
            roles.append([role, lab.iam.get_role(RoleName=role)["Role"]["Arn"]])
        except Exception:  # a missing role is shown, not raised: this is a tour
            roles.append([role, "(missing)"])
    table("IAM roles", ["role", "ARN"], roles)
    lbs = lab.elbv2.describe_load_balancers(Names=[names.load_balancer])["LoadBalancers"]
    tgs = lab.elbv2.describe_target_groups(Names=[names.target_group])["TargetGroups"]
    table(
        "Load balancing",
        ["kind", "name", "type / protocol", "DNS name / port"],
        [["load balancer", lb["LoadBalancerName"], lb.get("Type"), lb["DNSName"]] for lb in lbs]
        + [["target group", t["TargetGroupName"], t.get("Protocol"), t.get("Port")] for t in tgs],
    )


def repository_view(lab: Lab) -> None:
    repo = ecr.find_repository(lab)
    rows = [[repo["repositoryName"], repo["repositoryUri"], repo.get("createdAt")]] if repo else []
    table("Repository", ["name", "URI", "created"], rows)


def policy_view(lab: Lab) -> None:
    policy = ecr.repository_policy(lab) or {}
    rows = [
        [
            s.get("Sid"),
            s.get("Effect"),
            s.get("Principal"),
            f"{len(ecr.as_list(s.get('Action')))} actions",
        ]
        for s in ecr.as_list(policy.get("Statement"))
    ]
    table("Repository policy (Permissions)", ["statement", "effect", "principal", "actions"], rows)


def images_view(lab: Lab) -> None:
    reply = lab.ecr.describe_images(repositoryName=lab.repository_name)
    rows = [
        [
            ", ".join(d.get("imageTags", [])),
            d["imageDigest"],
            d.get("imageSizeInBytes"),
            d.get("imagePushedAt"),
        ]
        for d in reply["imageDetails"]
    ]
    table(f"Images in {lab.repository_name}", ["tags", "digest", "size (bytes)", "pushed"], rows)


def task_definition_view(lab: Lab) -> None:
    definition = taskdef.latest(lab)
    rows = []
    if definition:
        for c in definition["containerDefinitions"]:
            ports = ", ".join(
                f"{p.get('hostPort')}→{p.get('containerPort')}/{p.get('protocol')}"
                for p in c.get("portMappings", [])
            )
            rows.append(
                [
                    f"{definition['family']}:{definition['revision']}",
                    definition["status"],
                    c["name"],
                    c["image"],
                    c.get("memory"),
                    ports,
                ]
            )
    table(
        "Task definition (latest revision)",
        ["family:revision", "status", "container", "image", "memory (MiB)", "ports host→container"],
        rows,
    )


def _service_or_note(lab: Lab) -> dict[str, Any] | None:
    """The learner's service; None (and a note shown) when it does not exist yet."""
    service = ecs.find_service(lab)
    if service is None:
        note(f"Service {lab.service_name} does not exist yet (Exercise 4.3 creates it).", "⏳")
    return service


def target_group_view(lab: Lab) -> None:
    """The target group's Details: listener port, protocol and health check settings."""
    group = ecs.target_group(lab)
    check = (
        f"{group.get('HealthCheckProtocol')} port {group.get('HealthCheckPort')}, every "
        f"{group.get('HealthCheckIntervalSeconds')} s; healthy after "
        f"{group.get('HealthyThresholdCount')} passes, unhealthy after "
        f"{group.get('UnhealthyThresholdCount')} failures"
    )
    rows = [
        ["name", group["TargetGroupName"]],
        ["protocol : port", f"{group.get('Protocol')} : {group.get('Port')}"],
        ["target type", group.get("TargetType", "instance")],
        ["health check", check],
        [
            "load balancers",
            ", ".join(balancing_name(a) for a in group.get("LoadBalancerArns", []))
            or "(attached through the listener)",
        ],
        ["ARN", group["TargetGroupArn"]],
    ]
    table(f"Target group {group['TargetGroupName']}", ["field", "value"], rows)


def tasks_table(service_name: str, tasks: list[dict[str, Any]]) -> tuple[str, str]:
    """The console's Tasks tab as (HTML, plain text)."""
    rows = [
        [
            short_arn(t["taskArn"]),
            t.get("lastStatus"),
            t.get("desiredStatus"),
            short_arn(t.get("taskDefinitionArn", "")),
            short_arn(t.get("containerInstanceArn", "")),
            t.get("startedAt"),
        ]
        for t in tasks
    ]
    return table_markup(
        f"Tasks of {service_name}",
        ["task", "last status", "desired", "task definition", "container instance", "started"],
        rows,
    )


def tasks_view(lab: Lab) -> None:
    """The console's Tasks tab."""
    if _service_or_note(lab):
        show(*tasks_table(lab.service_name, ecs.tasks(lab)))


def events_table(service: dict[str, Any], limit: int = 8) -> tuple[str, str]:
    """The console's Events tab, newest first, as (HTML, plain text)."""
    rows = [[e["createdAt"], e["message"]] for e in service.get("events", [])[:limit]]
    title = f"Events of {service['serviceName']} (newest first)"
    return table_markup(title, ["time", "message"], rows)


def events_view(lab: Lab, limit: int = 8) -> None:
    """The console's Events tab, newest first."""
    service = _service_or_note(lab)
    if service:
        show(*events_table(service, limit))


def deployments_table(service: dict[str, Any]) -> tuple[str, str]:
    """The service's deployments (a rollout shows two) as (HTML, plain text)."""
    rows = [
        [
            d.get("status"),
            short_arn(d.get("taskDefinition", "")),
            d.get("desiredCount"),
            d.get("runningCount"),
            d.get("pendingCount"),
        ]
        for d in service.get("deployments", [])
    ]
    columns = ["status", "task definition", "desired", "running", "pending"]
    return table_markup("Deployments", columns, rows)


def details_view(lab: Lab) -> None:
    """The console's Details tab."""
    s = _service_or_note(lab)
    if s is None:
        return
    lbs = "; ".join(
        f"{balancing_name(lb.get('targetGroupArn', ''))} "
        f"→ {lb['containerName']}:{lb['containerPort']}"
        for lb in s.get("loadBalancers", [])
    )
    registries = "; ".join(short_arn(r["registryArn"]) for r in s.get("serviceRegistries", []))
    rows = [
        ["cluster", short_arn(s["clusterArn"])],
        ["status", s["status"]],
        ["task definition", short_arn(s["taskDefinition"])],
        ["launch type", s.get("launchType")],
        [
            "desired / running / pending",
            f"{s['desiredCount']} / {s['runningCount']} / {s['pendingCount']}",
        ],
        ["service role", short_arn(s.get("roleArn", ""))],
        ["target group", lbs],
        ["service discovery", registries],
        [
            "deployments",
            ", ".join(
                f"{d['status']} {short_arn(d['taskDefinition'])} ({d['runningCount']} running)"
                for d in s.get("deployments", [])
            ),
        ],
    ]
    table(f"Details of {lab.service_name}", ["field", "value"], rows)


def targets_table(target_group: str, targets: list[dict[str, Any]]) -> tuple[str, str]:
    """The target group's Targets tab as (HTML, plain text)."""
    rows = [
        [
            t["Target"]["Id"],
            t["Target"].get("Port"),
            t["TargetHealth"]["State"],
            t["TargetHealth"].get("Description", ""),
        ]
        for t in targets
    ]
    return table_markup(f"Targets of {target_group}", ["target", "port", "health", "detail"], rows)


def targets_view(lab: Lab) -> None:
    """The target group's Targets tab."""
    show(*targets_table(lab.names.target_group, ecs.target_health(lab)))
