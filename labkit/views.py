"""Console-like views, each a rich HTML table with a plain-text twin.

nbconvert and papermill have no widget frontend and CI logs are plain text, so every
view is sent as a MIME bundle holding both ``text/html`` and ``text/plain``.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from labkit.errors import LabkitError

# -- showing things -------------------------------------------------------------------


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and shell.__class__.__name__ != "TerminalInteractiveShell"


def show(html_text: str, plain_text: str) -> None:
    """Display rich HTML in a notebook (plain text for logs); print plain text elsewhere."""
    if _in_kernel():
        from IPython.display import display

        display({"text/html": html_text, "text/plain": plain_text}, raw=True)
    else:
        print(plain_text)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}"
    return "" if value is None else str(value)


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A small table: bold title, header row, one row per item ("(none)" when empty)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    plain = [title, "  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    plain += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    if not cells:
        plain.append("(none)")
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = (
        "".join(
            "<tr>"
            + "".join(f"<td style='text-align:left'>{html.escape(v)}</td>" for v in r)
            + "</tr>"
            for r in cells
        )
        or f"<tr><td colspan='{len(columns)}'><i>(none)</i></td></tr>"
    )
    show(
        f"<b>{html.escape(title)}</b><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>",
        "\n".join(plain),
    )


def note(text: str, emoji: str = "ℹ️") -> None:
    """A one-line callout."""
    show(
        f"<div style='padding:6px 10px;border-left:4px solid #1f77b4;background:#f3f8fc;"
        f"color:#111'>{emoji} {html.escape(text)}</div>",
        f"{emoji} {text}",
    )


def link(url: str, text: str = "") -> None:
    """A clickable link (plain text shows the URL)."""
    label = text or url
    show(
        f"<a href='{html.escape(url)}' target='_blank'>{html.escape(label)}</a>",
        f"{label}: {url}" if text else url,
    )


# -- errors: what / why / what to do --------------------------------------------------


def error_box(error: LabkitError) -> tuple[str, str]:
    """The HTML and plain-text box a LabkitError shows instead of a traceback wall."""
    rows = [("❌", error.what), ("Why", error.why), ("What to do", error.fix)]
    rows = [(k, v) for k, v in rows if v]
    plain = "\n".join(f"{k}: {v}" if k != "❌" else f"❌ {v}" for k, v in rows)
    body = "".join(
        f"<tr><td style='vertical-align:top;padding-right:8px'><b>{html.escape(k)}</b></td>"
        f"<td style='text-align:left'>{html.escape(v)}</td></tr>"
        for k, v in rows
    )
    kind = html.escape(type(error).__name__)
    return (
        "<div style='border:2px solid #d62728;border-radius:6px;padding:8px 12px;"
        f"background:#fff5f5;color:#111'><div style='color:#d62728'><b>{kind}</b></div>"
        f"<table>{body}</table></div>",
        f"{type(error).__name__}\n{plain}",
    )


def explain(exc: BaseException) -> LabkitError:
    """A LabkitError for ``exc``: itself, or an AWS/Docker error put in what/why/fix terms."""
    if isinstance(exc, LabkitError):
        return exc
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from labkit.errors import BackendError, CredentialsMissing

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "Error")
        operation = getattr(exc, "operation_name", "the request")
        fix = "Read the message; re-run the notebook's earlier cells, then this one."
        if "AccessDenied" in code or "Unauthorized" in code:
            fix = "Your credentials may not allow this; the lab's policy limits what you can do."
        elif code.endswith("NotFoundException") or code.endswith("NotFound"):
            fix = "Something this step needs is missing: run the earlier notebooks in order."
        return BackendError(
            f"AWS refused {operation}.", why=f"{code}: {error.get('Message')}", fix=fix
        )
    if isinstance(exc, NoCredentialsError):
        return CredentialsMissing(
            "No AWS credentials were found.",
            why=str(exc),
            fix="Run `aws configure`, or use backend = 'sandbox'.",
        )
    if isinstance(exc, EndpointConnectionError):
        return BackendError(
            "The AWS endpoint did not answer.",
            why=str(exc),
            fix="Start the sandbox (notebook 00 or `labkit sandbox up`) or check AWS_ENDPOINT_URL.",
        )
    return BackendError(
        f"{type(exc).__name__}: {exc}",
        fix="Re-run the cell; if it persists, run `labkit check` to see which task is not done.",
    )


def _labkit_exception_handler(shell, etype, value, tb, tb_offset=None):
    """IPython custom exception handler: a short box, and a one-line error output.

    The error output (not only the box) matters: papermill fails a run on it.
    """
    value = explain(value)
    html_text, plain_text = error_box(value)
    from IPython.display import display

    display({"text/html": html_text, "text/plain": plain_text}, raw=True)
    stb = [f"{etype.__name__}: {value.what} (details above)"]
    shell._showtraceback(etype, value, stb)
    return stb


def install_error_display() -> bool:
    """Show LabkitError (and botocore's errors) as a box in IPython kernels.

    Called when labkit is imported; anything else keeps IPython's usual traceback."""
    if not _in_kernel():
        return False
    from botocore.exceptions import BotoCoreError, ClientError
    from IPython import get_ipython

    handled = (LabkitError, ClientError, BotoCoreError)
    get_ipython().set_custom_exc(handled, _labkit_exception_handler)
    return True


# -- the lab's picture ----------------------------------------------------------------

LAB_DIAGRAM_SVG = """
<svg xmlns="http://www.w3.org/2000/svg" width="760" height="110" font-family="sans-serif"
     font-size="13">
  <defs><marker id="a" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">
    <path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>
  <g>
    <rect x="5" y="30" width="120" height="50" rx="8" fill="#ff9900"/>
    <text x="65" y="52" text-anchor="middle" fill="#fff">ECR repository</text>
    <text x="65" y="70" text-anchor="middle" fill="#fff">Task 1</text>
    <rect x="160" y="30" width="120" height="50" rx="8" fill="#ff9900"/>
    <text x="220" y="52" text-anchor="middle" fill="#fff">image</text>
    <text x="220" y="70" text-anchor="middle" fill="#fff">Task 2</text>
    <rect x="315" y="30" width="130" height="50" rx="8" fill="#e7157b"/>
    <text x="380" y="52" text-anchor="middle" fill="#fff">task definition</text>
    <text x="380" y="70" text-anchor="middle" fill="#fff">Task 3</text>
    <rect x="480" y="30" width="120" height="50" rx="8" fill="#e7157b"/>
    <text x="540" y="52" text-anchor="middle" fill="#fff">ECS service</text>
    <text x="540" y="70" text-anchor="middle" fill="#fff">Task 4</text>
    <rect x="635" y="30" width="120" height="50" rx="8" fill="#8c4fff"/>
    <text x="695" y="52" text-anchor="middle" fill="#fff">load balancer</text>
    <text x="695" y="70" text-anchor="middle" fill="#fff">your page</text>
  </g>
  <g stroke="#555" stroke-width="2" marker-end="url(#a)">
    <line x1="125" y1="55" x2="158" y2="55"/><line x1="280" y1="55" x2="313" y2="55"/>
    <line x1="445" y1="55" x2="478" y2="55"/><line x1="600" y1="55" x2="633" y2="55"/>
  </g>
  <text x="5" y="105" fill="#555">push → describe → run as tasks on ECSCluster → reach them
through Myloadbalancer</text>
</svg>
"""

LAB_DIAGRAM_TEXT = (
    "ECR repository (Task 1) → image (Task 2) → task definition (Task 3) → "
    "ECS service (Task 4) → load balancer → your page"
)


def lab_diagram() -> None:
    show(LAB_DIAGRAM_SVG, LAB_DIAGRAM_TEXT)


# -- Task 4's picture: how a request reaches a task ---------------------------------

NLB_DIAGRAM_SVG = """
<svg xmlns="http://www.w3.org/2000/svg" width="860" height="190" font-family="sans-serif"
     font-size="12">
  <defs><marker id="n" markerWidth="10" markerHeight="8" refX="9" refY="4" orient="auto">
    <path d="M0,0 L10,4 L0,8 z" fill="#555"/></marker></defs>
  <rect x="5" y="40" width="140" height="70" rx="8" fill="#8c4fff"/>
  <text x="75" y="62" text-anchor="middle" fill="#fff" font-weight="bold">load balancer</text>
  <text x="75" y="80" text-anchor="middle" fill="#fff">Myloadbalancer</text>
  <text x="75" y="97" text-anchor="middle" fill="#fff">one DNS name</text>
  <rect x="180" y="40" width="120" height="70" rx="8" fill="#8c4fff"/>
  <text x="240" y="62" text-anchor="middle" fill="#fff" font-weight="bold">listener</text>
  <text x="240" y="80" text-anchor="middle" fill="#fff">TCP port 80</text>
  <text x="240" y="97" text-anchor="middle" fill="#fff">forward to →</text>
  <rect x="335" y="40" width="150" height="70" rx="8" fill="#8c4fff"/>
  <text x="410" y="62" text-anchor="middle" fill="#fff" font-weight="bold">target group</text>
  <text x="410" y="80" text-anchor="middle" fill="#fff">myTargetgroup</text>
  <text x="410" y="97" text-anchor="middle" fill="#fff">health check each target</text>
  <rect x="520" y="20" width="150" height="45" rx="8" fill="#e7157b"/>
  <text x="595" y="38" text-anchor="middle" fill="#fff">target: instance A</text>
  <text x="595" y="55" text-anchor="middle" fill="#fff">host port 80 · healthy</text>
  <rect x="520" y="85" width="150" height="45" rx="8" fill="#e7157b" opacity="0.55"/>
  <text x="595" y="103" text-anchor="middle" fill="#fff">target: instance B</text>
  <text x="595" y="120" text-anchor="middle" fill="#fff">(when 2 tasks run)</text>
  <rect x="705" y="20" width="150" height="45" rx="8" fill="#ff9900"/>
  <text x="780" y="38" text-anchor="middle" fill="#fff">task of MYSERVICE&lt;n&gt;</text>
  <text x="780" y="55" text-anchor="middle" fill="#fff">container ecs-sample:80</text>
  <rect x="705" y="85" width="150" height="45" rx="8" fill="#ff9900" opacity="0.55"/>
  <text x="780" y="112" text-anchor="middle" fill="#fff">task</text>
  <g stroke="#555" stroke-width="2" marker-end="url(#n)">
    <line x1="145" y1="75" x2="178" y2="75"/><line x1="300" y1="75" x2="333" y2="75"/>
    <line x1="485" y1="70" x2="518" y2="45"/><line x1="485" y1="80" x2="518" y2="105"/>
    <line x1="670" y1="42" x2="703" y2="42"/><line x1="670" y1="107" x2="703" y2="107"/>
  </g>
  <text x="5" y="150" fill="#555">ECS (with ecsServiceRole) registers each task as a target,
and each task in Cloud Map:</text>
  <text x="5" y="168" fill="#555">MYSERVICE&lt;n&gt;.myprivatednsnamespace → SRV record:
instance address + host port (service discovery, inside the VPC)</text>
</svg>
"""

NLB_DIAGRAM_TEXT = """\
browser → load balancer Myloadbalancer (one DNS name)
        → listener TCP:80 (forwards to)
        → target group myTargetgroup (health-checks each target; sends only to healthy ones)
        → targets: container instance + host port 80 (ECS registers them, ecsServiceRole)
        → tasks of MYSERVICE<n>: container ecs-sample, port 80
Service discovery: MYSERVICE<n>.myprivatednsnamespace → SRV records (address + port of
each task), answered inside the VPC."""


def load_balancer_diagram() -> None:
    """Load balancer → listener → target group → targets → tasks (and Cloud Map)."""
    show(NLB_DIAGRAM_SVG, NLB_DIAGRAM_TEXT)


# -- console-like views of the lab's resources ----------------------------------------


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1] if arn else ""


def _target_group_name(arn: str) -> str:
    """``…:targetgroup/NAME/ID`` → NAME, as the console shows it (step 52)."""
    parts = arn.split("/")
    return parts[-2] if len(parts) >= 3 else _short(arn)


def identity_view(lab) -> None:
    """Who am I: the STS caller identity, and the backend (no key material, ever)."""
    ident = lab.identity
    table(
        "Who am I (sts get-caller-identity)",
        ["backend", "account", "region", "caller ARN"],
        [[lab.backend.value, ident["account"], lab.region, ident["arn"]]],
    )


def environment_tour(lab) -> None:
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
                    _short(i["containerInstanceArn"]),
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


def repository_view(lab) -> None:
    from labkit import ecr

    repo = ecr.find_repository(lab)
    rows = [[repo["repositoryName"], repo["repositoryUri"], repo.get("createdAt")]] if repo else []
    table("Repository", ["name", "URI", "created"], rows)


def policy_view(lab) -> None:
    from labkit import ecr

    policy = ecr.repository_policy(lab) or {}
    statements = policy.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    rows = []
    for s in statements:
        actions = s.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        rows.append([s.get("Sid"), s.get("Effect"), s.get("Principal"), f"{len(actions)} actions"])
    table("Repository policy (Permissions)", ["statement", "effect", "principal", "actions"], rows)


def images_view(lab) -> None:
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


def task_definition_view(lab) -> None:
    from labkit import taskdef

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


def _no_service_yet(lab) -> bool:
    """True (and a note shown) when the learner's service does not exist yet."""
    from labkit import ecs

    if ecs.find_service(lab) is not None:
        return False
    note(f"Service {lab.service_name} does not exist yet (Exercise 4.2 creates it).", "⏳")
    return True


def target_group_view(lab) -> None:
    """The target group's Details: listener port, protocol and health check settings."""
    from labkit import ecs

    group = ecs._target_group(lab)
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
            ", ".join(_target_group_name(a) for a in group.get("LoadBalancerArns", []))
            or "(attached through the listener)",
        ],
        ["ARN", group["TargetGroupArn"]],
    ]
    table(f"Target group {group['TargetGroupName']}", ["field", "value"], rows)


def tasks_view(lab) -> None:
    """The console's Tasks tab."""
    from labkit import ecs

    if _no_service_yet(lab):
        return
    rows = [
        [
            _short(t["taskArn"]),
            t.get("lastStatus"),
            t.get("desiredStatus"),
            _short(t.get("taskDefinitionArn", "")),
            _short(t.get("containerInstanceArn", "")),
            t.get("startedAt"),
        ]
        for t in ecs.tasks(lab)
    ]
    table(
        f"Tasks of {lab.service_name}",
        ["task", "last status", "desired", "task definition", "container instance", "started"],
        rows,
    )


def events_view(lab, limit: int = 8) -> None:
    """The console's Events tab, newest first."""
    from labkit import ecs

    if _no_service_yet(lab):
        return
    service = ecs.require_service(lab)
    rows = [[e["createdAt"], e["message"]] for e in service.get("events", [])[:limit]]
    table(f"Events of {lab.service_name} (newest first)", ["time", "message"], rows)


def details_view(lab) -> None:
    """The console's Details tab."""
    from labkit import ecs

    if _no_service_yet(lab):
        return
    s = ecs.require_service(lab)
    lbs = "; ".join(
        f"{_target_group_name(lb.get('targetGroupArn', ''))} "
        f"→ {lb['containerName']}:{lb['containerPort']}"
        for lb in s.get("loadBalancers", [])
    )
    registries = "; ".join(_short(r["registryArn"]) for r in s.get("serviceRegistries", []))
    rows = [
        ["cluster", _short(s["clusterArn"])],
        ["status", s["status"]],
        ["task definition", _short(s["taskDefinition"])],
        ["launch type", s.get("launchType")],
        [
            "desired / running / pending",
            f"{s['desiredCount']} / {s['runningCount']} / {s['pendingCount']}",
        ],
        ["service role", _short(s.get("roleArn", ""))],
        ["target group", lbs],
        ["service discovery", registries],
        [
            "deployments",
            ", ".join(
                f"{d['status']} {_short(d['taskDefinition'])} ({d['runningCount']} running)"
                for d in s.get("deployments", [])
            ),
        ],
    ]
    table(f"Details of {lab.service_name}", ["field", "value"], rows)


def targets_view(lab) -> None:
    """The target group's Targets tab."""
    from labkit import ecs

    rows = [
        [
            t["Target"]["Id"],
            t["Target"].get("Port"),
            t["TargetHealth"]["State"],
            t["TargetHealth"].get("Description", ""),
        ]
        for t in ecs.target_health(lab)
    ]
    table(f"Targets of {lab.names.target_group}", ["target", "port", "health", "detail"], rows)


def page_view(page) -> None:
    """The fetched page, rendered in a sandboxed iframe (plain text: status and title)."""
    srcdoc = html.escape(page.body, quote=True)
    show(
        f'<div>{html.escape(str(page))}</div><iframe sandbox srcdoc="{srcdoc}" '
        "style='width:100%;height:320px;border:1px solid #ccc'></iframe>",
        str(page),
    )
