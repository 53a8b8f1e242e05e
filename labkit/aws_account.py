"""Your own AWS account: find or provision the lab's environment, guard the bill, tear down.

The lab assumes a provider's account where the cluster ``ECSCluster`` (EC2 container
instances), the roles ``Ec2instanceRole`` and ``ecsServiceRole``, the network load
balancer ``Myloadbalancer`` and the target group ``myTargetgroup`` already exist. A
learner with their own account has none of that, so this module

- finds an existing lab environment (the kit's CloudFormation stack, or the lab's names),
- provisions one from ``labkit/resources/cloudformation/lab-environment.yaml`` — only
  after an explicit cost confirmation,
- reports how long it has existed and roughly what it has cost,
- tears down everything the kit created (and only that), in dependency order,
- turns AWS "access denied" errors into a labkit error that names the missing action and
  points at the learner policy ``labkit/resources/iam/learner-policy.json``.

Every function takes a ``boto3.Session`` so it works against real AWS and moto alike.
Nothing here prints; results are dataclasses with ``describe()`` for plain text.
"""

from __future__ import annotations

import fnmatch
import json
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError, NoCredentialsError

from labkit.config import KIT_TAG_KEY, KIT_TAG_VALUE, LAB, has_kit_tag
from labkit.errors import (
    BackendError,
    CredentialsMissing,
    InputError,
    LabkitError,
    PrerequisiteError,
)

__all__ = [
    "STACK_NAME",
    "TEMPLATE_PATH",
    "POLICY_PATH",
    "PRICES_AS_OF",
    "CostLine",
    "CostEstimate",
    "LabEnvironment",
    "EnvironmentAge",
    "TeardownReport",
    "load_template",
    "load_learner_policy",
    "estimate_cost",
    "find_environment",
    "provision",
    "environment_age_and_cost",
    "teardown",
    "explain_access_denied",
    "access_denied_explained",
]

#: The CloudFormation stack the kit creates (one per region).
STACK_NAME = "labkit-ecs-lab"
#: A second stack tag, so the kit recognises its stack even if it was renamed.
COMPONENT_TAG_KEY = "labkit:component"
COMPONENT_TAG_VALUE = "lab-environment"

#: Paths inside the repository / package, shown to learners in error messages.
TEMPLATE_PATH = "labkit/resources/cloudformation/lab-environment.yaml"
POLICY_PATH = "labkit/resources/iam/learner-policy.json"
POLICY_DOC = "docs/aws-account.md"

_TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}

# --------------------------------------------------------------------------- prices
#: When the price table below was taken from the public AWS pricing pages (on-demand,
#: Linux, USD). Prices change: treat every figure as approximate.
PRICES_AS_OF = "2025-06 (AWS public on-demand price pages; not re-checked since)"

#: Per region: t3.micro $/hour, NLB $/hour, gp3 $/GB-month. t3.small costs exactly twice
#: t3.micro in every region, so one column is enough.
_PRICE_TABLE: dict[str, tuple[float, float, float]] = {
    "us-east-1": (0.0104, 0.0225, 0.080),
    "us-east-2": (0.0104, 0.0225, 0.080),
    "us-west-1": (0.0124, 0.0252, 0.096),
    "us-west-2": (0.0104, 0.0225, 0.080),
    "ca-central-1": (0.0116, 0.02475, 0.088),
    "eu-west-1": (0.0114, 0.0252, 0.088),
    "eu-west-2": (0.0118, 0.02646, 0.0928),
    "eu-central-1": (0.0120, 0.0270, 0.0952),
    "ap-south-1": (0.0112, 0.0225, 0.0912),
    "ap-southeast-1": (0.0132, 0.0252, 0.096),
    "ap-southeast-2": (0.0132, 0.0252, 0.096),
    "ap-northeast-1": (0.0136, 0.0243, 0.096),
    "sa-east-1": (0.0168, 0.0340, 0.152),
}
_INSTANCE_MULTIPLIER = {"t3.micro": 1.0, "t3.small": 2.0}
#: Every public IPv4 address costs the same in every region since February 2024.
_PUBLIC_IPV4_HOURLY = 0.005
#: Root volume of the ECS-optimized Amazon Linux 2023 AMI.
_ROOT_VOLUME_GIB = 30
_HOURS_PER_MONTH = 730
#: The template's NLB spans two Availability Zones: one public address in each.
_NLB_PUBLIC_IPS = 2


@dataclass(frozen=True)
class CostLine:
    """One billable item of the estimate."""

    item: str
    quantity: float
    unit: str
    hourly_usd: float


@dataclass(frozen=True)
class CostEstimate:
    """A rough, clearly approximate hourly and daily cost of the lab environment."""

    region: str
    instance_type: str
    instance_count: int
    lines: tuple[CostLine, ...]
    prices_as_of: str = PRICES_AS_OF
    region_in_table: bool = True

    @property
    def hourly_usd(self) -> float:
        return sum(line.hourly_usd for line in self.lines)

    @property
    def daily_usd(self) -> float:
        return self.hourly_usd * 24

    def describe(self) -> str:
        out = [
            f"APPROXIMATE cost of the lab environment in {self.region} "
            f"({self.instance_count} x {self.instance_type}):",
        ]
        for line in self.lines:
            out.append(
                f"  {line.item:<44} {line.quantity:>4g} {line.unit:<10} ${line.hourly_usd:.4f}/h"
            )
        out.append(f"  {'total':<60} ${self.hourly_usd:.4f}/h  ~${self.daily_usd:.2f}/day")
        out.append(f"Prices taken {self.prices_as_of}; USD, on-demand, before tax.")
        if not self.region_in_table:
            out.append(
                f"{self.region} is not in the kit's price table: the highest listed price "
                "of each item is used as an upper-bound guess."
            )
        out.append(
            "Not included: load balancer capacity units and data transfer (tiny for this "
            "lab), ECR storage ($0.10/GB-month), free-tier credits. Charges run until "
            "teardown() finishes."
        )
        return "\n".join(out)


def estimate_cost(
    region: str, instance_type: str = "t3.micro", instance_count: int = 2
) -> CostEstimate:
    """Estimate the hourly and daily cost of the lab environment in ``region``.

    Counts the container instances, their root volumes, the network load balancer and
    the public IPv4 addresses (one per instance, one per load balancer zone).
    """
    if instance_type not in _INSTANCE_MULTIPLIER:
        raise InputError(
            f"Instance type {instance_type!r} is not one the kit provisions.",
            why=f"Expected one of {', '.join(_INSTANCE_MULTIPLIER)}.",
            fix="Use instance_type='t3.micro' (the default).",
        )
    if not isinstance(instance_count, int) or not 1 <= instance_count <= 2:
        raise InputError(
            f"instance_count={instance_count!r} is out of range.",
            why="The template runs 1 or 2 container instances (2 by default: room for a "
            "rolling deployment of a task on host port 80).",
            fix="Use instance_count=2 (the default), or 1 to save the cost of one instance.",
        )
    in_table = region in _PRICE_TABLE
    if in_table:
        ec2_micro, nlb, gp3 = _PRICE_TABLE[region]
    else:
        # Unknown region: overestimate rather than understate what the learner will pay.
        ec2_micro, nlb, gp3 = (max(col) for col in zip(*_PRICE_TABLE.values(), strict=True))
    ec2 = ec2_micro * _INSTANCE_MULTIPLIER[instance_type]
    lines = (
        CostLine("EC2 container instances", instance_count, "instances", ec2 * instance_count),
        CostLine(
            f"EBS gp3 root volumes ({_ROOT_VOLUME_GIB} GiB each)",
            instance_count,
            "volumes",
            gp3 * _ROOT_VOLUME_GIB * instance_count / _HOURS_PER_MONTH,
        ),
        CostLine("Network Load Balancer (hourly charge)", 1, "NLB", nlb),
        CostLine(
            "Public IPv4 addresses (instances + NLB zones)",
            instance_count + _NLB_PUBLIC_IPS,
            "addresses",
            _PUBLIC_IPV4_HOURLY * (instance_count + _NLB_PUBLIC_IPS),
        ),
    )
    return CostEstimate(region, instance_type, instance_count, lines, region_in_table=in_table)


# --------------------------------------------------------------------------- resources
# A plain path, not importlib.resources: labkit is a namespace package (no __init__.py),
# which importlib.resources cannot read under an editable install.
_RESOURCES = Path(__file__).resolve().parent / "resources"


def load_template() -> str:
    """Return the CloudFormation template body that provisions the lab environment."""
    return (_RESOURCES / "cloudformation" / "lab-environment.yaml").read_text(encoding="utf-8")


def load_learner_policy() -> dict[str, Any]:
    """Return the least-privilege IAM policy a learner needs to run the lab in AWS mode."""
    return json.loads((_RESOURCES / "iam" / "learner-policy.json").read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- access denied
_DENIED_CODES = {
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnauthorizedAccess",
    "AuthorizationError",
    "NotAuthorized",
}
_ACTION_IN_MESSAGE = re.compile(r"(?:perform|to perform):? ([A-Za-z0-9-]+:[A-Za-z0-9*]+)")


def _policy_allows(action: str) -> bool:
    """Whether the kit's learner policy lists ``action`` (wildcards honoured)."""
    action = action.lower()
    for statement in load_learner_policy()["Statement"]:
        if statement.get("Effect") != "Allow":
            continue
        actions = statement.get("Action", [])
        for pattern in [actions] if isinstance(actions, str) else actions:
            if fnmatch.fnmatchcase(action, pattern.lower()):
                return True
    return False


def explain_access_denied(error: BaseException, action: str | None = None) -> BackendError | None:
    """Turn an AWS "access denied" ``ClientError`` into a labkit ``BackendError``.

    The error names the IAM action that was refused (read from AWS's message, else
    ``action``) and points at the learner policy file. Returns ``None`` when ``error`` is
    not an access-denied error, so callers can re-raise it unchanged.
    """
    if not isinstance(error, ClientError):
        return None
    err = error.response.get("Error", {})
    if err.get("Code") not in _DENIED_CODES:
        return None
    message = str(err.get("Message", ""))
    found = _ACTION_IN_MESSAGE.search(message)
    missing = found.group(1) if found else action or f"the action behind {error.operation_name}"
    if ":" in missing and _policy_allows(missing):
        cause = (
            f"The kit's learner policy ({POLICY_PATH}) includes {missing}, so that policy "
            "is probably not attached to the identity you use, or a permissions boundary "
            "or organization SCP blocks it."
        )
    else:
        cause = f"The kit's learner policy ({POLICY_PATH}) is what grants the lab's actions."
    return BackendError(
        f"AWS denied {missing} ({error.operation_name}).",
        why=f"Your AWS identity is not allowed to call {missing}. {cause} "
        f"AWS said: {message or err.get('Code')}",
        fix=f"Attach the policy in {POLICY_PATH} to your IAM user or role "
        f"(steps in {POLICY_DOC}), wait a few seconds, then run the step again.",
    )


@contextmanager
def access_denied_explained(action: str | None = None) -> Iterator[None]:
    """Context manager: re-raise access-denied and missing-credential errors as labkit errors."""
    try:
        yield
    except ClientError as exc:
        explained = explain_access_denied(exc, action)
        if explained is not None:
            raise explained from exc
        raise
    except NoCredentialsError as exc:
        raise CredentialsMissing(
            "No AWS credentials were found.",
            why="AWS mode uses the default boto3 credential chain (environment, "
            "~/.aws/credentials, SSO, instance role) and it found nothing.",
            fix="Run `aws configure` or `aws sso login`, or set AWS_PROFILE, then retry.",
        ) from exc


# --------------------------------------------------------------------------- helpers
def _region(session: boto3.Session) -> str:
    if not session.region_name:
        raise InputError(
            "No AWS region is set.",
            why="The lab environment is regional and the boto3 session has no region.",
            fix="Pass boto3.Session(region_name='us-west-2') or set AWS_DEFAULT_REGION.",
        )
    return session.region_name


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _kit_stack(cfn: Any) -> dict[str, Any] | None:
    """The kit's live lab-environment stack, found by name first, then by its tags."""
    try:
        stacks = cfn.describe_stacks(StackName=STACK_NAME)["Stacks"]
    except ClientError as exc:
        if _code(exc) != "ValidationError":  # "Stack ... does not exist"
            raise
        stacks = []
    for stack in stacks:
        if has_kit_tag(stack.get("Tags")):
            return stack
    for page in cfn.get_paginator("describe_stacks").paginate():
        for stack in page["Stacks"]:
            tags = {t["Key"]: t["Value"] for t in stack.get("Tags", [])}
            if has_kit_tag(stack.get("Tags")) and tags.get(COMPONENT_TAG_KEY) == (
                COMPONENT_TAG_VALUE
            ):
                return stack
    return None


def _probe_lab_names(session: boto3.Session) -> dict[str, str | None]:
    """ARN of each pre-provisioned lab resource found by its lab name, else None."""
    found: dict[str, str | None] = {}
    ecs = session.client("ecs")
    clusters = ecs.describe_clusters(clusters=[LAB.cluster])["clusters"]
    found[LAB.cluster] = next(
        (c["clusterArn"] for c in clusters if c.get("status") == "ACTIVE"), None
    )
    iam = session.client("iam")
    for role in (LAB.instance_role, LAB.service_role):
        try:
            found[role] = iam.get_role(RoleName=role)["Role"]["Arn"]
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            found[role] = None
    elbv2 = session.client("elbv2")
    try:
        lbs = elbv2.describe_load_balancers(Names=[LAB.load_balancer])["LoadBalancers"]
        found[LAB.load_balancer] = lbs[0]["LoadBalancerArn"]
    except ClientError as exc:
        if _code(exc) != "LoadBalancerNotFound":
            raise
        found[LAB.load_balancer] = None
    try:
        tgs = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"]
        found[LAB.target_group] = tgs[0]["TargetGroupArn"]
    except ClientError as exc:
        if _code(exc) != "TargetGroupNotFound":
            raise
        found[LAB.target_group] = None
    return found


def _target_group_vpc(session: boto3.Session) -> str | None:
    elbv2 = session.client("elbv2")
    tgs = elbv2.describe_target_groups(Names=[LAB.target_group])["TargetGroups"]
    return tgs[0].get("VpcId") if tgs else None


# --------------------------------------------------------------------------- find
@dataclass(frozen=True)
class LabEnvironment:
    """The pre-provisioned part of the lab: cluster, roles, load balancer, target group."""

    region: str
    created_by_kit: bool
    #: Lab name -> ARN for each pre-provisioned resource that exists.
    resources: dict[str, str]
    #: Lab names that do not exist (yet).
    missing: tuple[str, ...]
    stack_name: str | None = None
    stack_id: str | None = None
    stack_status: str | None = None
    created_at: datetime | None = None
    outputs: dict[str, str] = field(default_factory=dict)
    #: The lab's VPC (the target group's): Cloud Map's private namespace belongs in it.
    vpc_id: str | None = None

    @property
    def complete(self) -> bool:
        """True when every resource the lab expects exists and the stack (if any) is done."""
        return not self.missing and (self.stack_status in (None, *_TERMINAL_OK))

    @property
    def load_balancer_dns(self) -> str | None:
        return self.outputs.get("LoadBalancerDnsName")

    def describe(self) -> str:
        who = (
            f"created by the kit (stack {self.stack_name}, {self.stack_status})"
            if self.created_by_kit
            else "not created by the kit (the kit will never modify or delete it)"
        )
        out = [f"Lab environment in {self.region}: {who}."]
        for name, arn in self.resources.items():
            out.append(f"  found    {name:<16} {arn}")
        for name in self.missing:
            out.append(f"  MISSING  {name}")
        if self.vpc_id:
            out.append(f"  vpc      {self.vpc_id}")
        if self.created_at:
            out.append(f"  created  {self.created_at:%Y-%m-%d %H:%M} UTC")
        if self.load_balancer_dns:
            out.append(f"  page at  http://{self.load_balancer_dns}/ once your service runs")
        out.append("Ready for the lab." if self.complete else "Not ready for the lab yet.")
        return "\n".join(out)


def find_environment(session: boto3.Session) -> LabEnvironment | None:
    """Look for an existing lab environment in the session's region and report it.

    First the kit's own CloudFormation stack (by name, then by the kit's tags), then the
    lab's names (``ECSCluster``, ``Ec2instanceRole``, ``ecsServiceRole``,
    ``Myloadbalancer``, ``myTargetgroup``). Returns ``None`` when none of them exist.
    """
    region = _region(session)
    with access_denied_explained():
        stack = _kit_stack(session.client("cloudformation"))
        found = _probe_lab_names(session)
        vpc_id = _target_group_vpc(session) if found.get(LAB.target_group) else None
    present = {name: arn for name, arn in found.items() if arn}
    missing = tuple(name for name, arn in found.items() if not arn)
    if stack is None and not present:
        return None
    if stack is None:
        return LabEnvironment(region, False, present, missing, vpc_id=vpc_id)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    return LabEnvironment(
        region,
        True,
        present,
        missing,
        stack_name=stack["StackName"],
        stack_id=stack["StackId"],
        stack_status=stack["StackStatus"],
        created_at=stack.get("CreationTime"),
        outputs=outputs,
        vpc_id=vpc_id or outputs.get("VpcId"),
    )


# --------------------------------------------------------------------------- provision
def _wait_for_stack(
    cfn: Any,
    stack_id: str,
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Poll until the stack leaves every *_IN_PROGRESS state; return its last description."""
    deadline = time.monotonic() + timeout_s
    while True:
        stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
        if not stack["StackStatus"].endswith("_IN_PROGRESS"):
            return stack
        if time.monotonic() >= deadline:
            raise BackendError(
                f"Stack {stack['StackName']} is still {stack['StackStatus']} after "
                f"{timeout_s:.0f} s.",
                why="CloudFormation is slower than expected (EC2 and the NLB can take "
                "several minutes).",
                fix="Wait and call find_environment(session) again, or watch the stack "
                "in the CloudFormation console.",
            )
        sleep(poll_s)


def _failure_reasons(cfn: Any, stack_id: str) -> list[str]:
    """The reasons CloudFormation gave for each failed resource, oldest first."""
    events = cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
    return [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
        for e in reversed(events)
        if e.get("ResourceStatus", "").endswith("FAILED")
    ]


def provision(
    session: boto3.Session,
    *,
    confirm_cost: bool = False,
    instance_type: str = "t3.micro",
    instance_count: int = 2,
    allowed_cidr: str = "0.0.0.0/0",
    wait: bool = True,
    timeout_s: float = 1800,
    poll_s: float = 15,
    template_body: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> LabEnvironment:
    """Find the lab environment, or create it from the kit's CloudFormation template.

    Nothing billable is created unless ``confirm_cost`` is exactly ``True``: without it a
    ``PrerequisiteError`` shows the cost estimate and says how to confirm. An existing
    complete environment (the kit's or anyone's) is returned as it is, at no cost.
    ``template_body`` replaces the packaged template (tests, customised environments).
    """
    region = _region(session)
    estimate = estimate_cost(region, instance_type, instance_count)  # validates both
    if not isinstance(confirm_cost, bool):
        # A papermill "-p confirm_cost yes" arrives as a string: refuse, never guess.
        raise InputError(
            f"confirm_cost must be True or False, not {confirm_cost!r}.",
            fix="Pass confirm_cost=True (a boolean) to create billable resources.",
        )
    existing = find_environment(session)
    cfn = session.client("cloudformation")
    if existing is not None and existing.created_by_kit:
        status = existing.stack_status or ""
        if status.endswith("_IN_PROGRESS") and wait and existing.stack_id:
            with access_denied_explained():
                _wait_for_stack(cfn, existing.stack_id, timeout_s, poll_s, sleep)
            return find_environment(session) or existing
        if status in _TERMINAL_OK or status.endswith("_IN_PROGRESS"):
            return existing
        raise BackendError(
            f"The kit's stack {existing.stack_name} is in state {status}.",
            why="A previous provisioning or teardown did not finish.",
            fix="Run teardown(session) (or `labkit cleanup`), then provision again.",
        )
    reuse_service_role = False
    if existing is not None:
        if existing.complete:
            return existing  # The account already has the lab's environment: use it as is.
        conflicts = [n for n in existing.resources if n != LAB.service_role]
        if conflicts:
            raise PrerequisiteError(
                "Part of a lab environment already exists, and the kit did not create it.",
                why=f"Found {', '.join(existing.resources)}; missing "
                f"{', '.join(existing.missing)}. The kit only ever changes resources it "
                "created, and CloudFormation cannot create names that already exist.",
                fix="Finish that environment yourself, or delete those resources "
                "(they are not the kit's), then run provision again.",
            )
        # Accounts that used the old ECS console already have ecsServiceRole: reuse it.
        reuse_service_role = True
    if confirm_cost is not True:
        raise PrerequisiteError(
            f"Creating the lab environment in {region} costs money: about "
            f"${estimate.hourly_usd:.3f} per hour, ${estimate.daily_usd:.2f} per day "
            f"(approximate, prices taken {estimate.prices_as_of}).",
            why="The kit creates billable resources only after an explicit confirmation, "
            "and confirm_cost was not True. Nothing was created.\n" + estimate.describe(),
            fix="If that is fine, call provision(session, confirm_cost=True) (in a "
            "notebook: set confirm_cost = True in the parameters cell). Tear it all down "
            "with teardown(session) (`labkit cleanup`) when you finish.",
        )
    parameters = {
        "InstanceType": instance_type,
        "DesiredInstances": str(instance_count),
        "AllowedCidr": allowed_cidr,
        "CreateServiceRole": "false" if reuse_service_role else "true",
        "KitTagValue": KIT_TAG_VALUE,
    }
    with access_denied_explained("cloudformation:CreateStack"):
        stack_id = cfn.create_stack(
            StackName=STACK_NAME,
            TemplateBody=template_body if template_body is not None else load_template(),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
            Capabilities=["CAPABILITY_NAMED_IAM"],  # the lab's roles have fixed names
            # Delete on failure: a learner should never be left paying for half a stack.
            OnFailure="DELETE",
            Tags=[
                {"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE},
                {"Key": COMPONENT_TAG_KEY, "Value": COMPONENT_TAG_VALUE},
            ],
        )["StackId"]
        if not wait:
            return find_environment(session) or LabEnvironment(region, True, {}, ())
        stack = _wait_for_stack(cfn, stack_id, timeout_s, poll_s, sleep)
    if stack["StackStatus"] not in _TERMINAL_OK:
        reasons = _failure_reasons(cfn, stack_id)
        denied = next((r for r in reasons if "not authorized to perform" in r), None)
        fix = "Fix the cause, run teardown(session), then provision again."
        if denied:
            fix = f"Attach {POLICY_PATH} to your IAM identity ({POLICY_DOC}); then retry."
        raise BackendError(
            f"Provisioning the lab environment failed ({stack['StackStatus']}).",
            why="; ".join(reasons) or stack.get("StackStatusReason", "no reason given"),
            fix=fix,
        )
    env = find_environment(session)
    if env is None:  # pragma: no cover - CloudFormation said complete; be explicit anyway
        raise BackendError("The stack was created but the lab environment was not found.")
    return env


# --------------------------------------------------------------------------- age and cost
@dataclass(frozen=True)
class EnvironmentAge:
    """How long the kit's environment has existed and roughly what it has cost so far."""

    stack_name: str
    region: str
    created_at: datetime
    age: timedelta
    estimate: CostEstimate

    @property
    def cost_so_far_usd(self) -> float:
        return self.estimate.hourly_usd * self.age.total_seconds() / 3600

    def describe(self) -> str:
        hours, rest = divmod(int(self.age.total_seconds()), 3600)
        return (
            f"The kit's lab environment ({self.stack_name}, {self.region}) has existed for "
            f"{hours} h {rest // 60} min, since {self.created_at:%Y-%m-%d %H:%M} UTC. "
            f"At about ${self.estimate.hourly_usd:.3f}/hour that is roughly "
            f"${self.cost_so_far_usd:.2f} so far (approximate; the Billing console has the "
            "real figure). It keeps costing money until teardown(session) / "
            "`labkit cleanup`."
        )


def environment_age_and_cost(
    session: boto3.Session, now: datetime | None = None
) -> EnvironmentAge | None:
    """Report the age and approximate cost so far of the kit's stack (None if there is none)."""
    region = _region(session)
    with access_denied_explained():
        stack = _kit_stack(session.client("cloudformation"))
    if stack is None:
        return None
    params = {p["ParameterKey"]: p["ParameterValue"] for p in stack.get("Parameters", [])}
    instance_type = params.get("InstanceType", "t3.micro")
    if instance_type not in _INSTANCE_MULTIPLIER:
        instance_type = "t3.small"  # unknown size: the larger one, never understate
    count = max(1, min(2, int(params.get("DesiredInstances", "2") or 2)))
    created = stack["CreationTime"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    age = max((now or datetime.now(UTC)) - created, timedelta(0))
    return EnvironmentAge(
        stack["StackName"], region, created, age, estimate_cost(region, instance_type, count)
    )


# --------------------------------------------------------------------------- teardown
@dataclass
class TeardownReport:
    """What teardown did, what it left alone and why, and what kit-tagged is still there."""

    region: str
    deleted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    stack_deleted: bool = False

    @property
    def ok(self) -> bool:
        """True when nothing failed and nothing tagged by the kit remains."""
        return not self.errors and not self.leftovers

    def describe(self) -> str:
        out = [f"Teardown in {self.region}:"]
        out += [f"  deleted   {d}" for d in self.deleted] or ["  deleted   nothing"]
        out += [f"  left      {s}" for s in self.skipped]
        out += [f"  FAILED    {e}" for e in self.errors]
        if self.leftovers:
            out.append("Still tagged as the kit's (delete by hand, or run teardown again):")
            out += [f"  {arn}" for arn in self.leftovers]
        else:
            out.append("Nothing tagged as the kit's is left.")
        return "\n".join(out)


def _step(report: TeardownReport, what: str) -> Any:
    """Decorator-free helper: run a teardown step, recording errors instead of raising."""

    @contextmanager
    def runner() -> Iterator[None]:
        try:
            with access_denied_explained():
                yield
        except LabkitError as exc:
            report.errors.append(f"{what}: {exc.what} {exc.fix}")
        except ClientError as exc:
            report.errors.append(f"{what}: {exc}")

    return runner()


def _poll(
    done: Callable[[], bool],
    timeout_s: float,
    poll_s: float,
    sleep: Callable[[float], None],
) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() >= deadline:
            return False
        sleep(poll_s)
    return True


def _teardown_services(
    session: boto3.Session, report: TeardownReport, wait: bool, poll: Callable[..., bool]
) -> None:
    ecs = session.client("ecs")
    clusters = ecs.describe_clusters(clusters=[LAB.cluster])["clusters"]
    if not any(c.get("status") == "ACTIVE" for c in clusters):
        return
    arns = [
        a
        for p in ecs.get_paginator("list_services").paginate(cluster=LAB.cluster)
        for a in p["serviceArns"]
    ]
    deleted: list[str] = []
    for i in range(0, len(arns), 10):  # DescribeServices takes at most 10
        described = ecs.describe_services(
            cluster=LAB.cluster, services=arns[i : i + 10], include=["TAGS"]
        )["services"]
        for svc in described:
            name = svc["serviceName"]
            if not has_kit_tag(svc.get("tags")):
                report.skipped.append(f"ECS service {name}: not tagged by the kit")
                continue
            # Scale to zero first so tasks drain from the target group before deletion.
            if svc.get("desiredCount", 0) > 0:
                ecs.update_service(cluster=LAB.cluster, service=name, desiredCount=0)
            ecs.delete_service(cluster=LAB.cluster, service=name, force=True)
            deleted.append(name)
            report.deleted.append(f"ECS service {name} (scaled to 0 first)")
    if wait and deleted:

        def inactive() -> bool:
            svcs = ecs.describe_services(cluster=LAB.cluster, services=deleted)["services"]
            return all(s["status"] == "INACTIVE" for s in svcs)

        if not poll(inactive):
            report.errors.append(f"ECS services {deleted} were still draining at the timeout")


def _teardown_task_definitions(session: boto3.Session, report: TeardownReport) -> None:
    ecs = session.client("ecs")
    arns = [
        a
        for p in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=LAB.task_family)
        for a in p["taskDefinitionArns"]
        # familyPrefix is a prefix: keep exactly the lab's family, not "ecs-demo2".
        if a.rsplit("/", 1)[-1].rsplit(":", 1)[0] == LAB.task_family
    ]
    done: list[str] = []
    for arn in arns:
        tags = ecs.list_tags_for_resource(resourceArn=arn).get("tags", [])
        revision = arn.rsplit("/", 1)[-1]
        if not has_kit_tag(tags):
            report.skipped.append(f"task definition {revision}: not tagged by the kit")
            continue
        ecs.deregister_task_definition(taskDefinition=arn)
        done.append(arn)
        report.deleted.append(f"task definition {revision} (deregistered)")
    # Deregistered revisions stay listed as INACTIVE forever unless deleted too.
    for i in range(0, len(done), 10):
        try:
            ecs.delete_task_definitions(taskDefinitions=done[i : i + 10])
        except ClientError:
            pass  # Optional tidy-up: INACTIVE revisions cost nothing.


def _teardown_repository(session: boto3.Session, report: TeardownReport) -> None:
    ecr = session.client("ecr")
    try:
        repo = ecr.describe_repositories(repositoryNames=[LAB.repository])["repositories"][0]
    except ClientError as exc:
        if _code(exc) == "RepositoryNotFoundException":
            return
        raise
    tags = ecr.list_tags_for_resource(resourceArn=repo["repositoryArn"]).get("tags", [])
    if not has_kit_tag(tags):
        report.skipped.append(f"ECR repository {LAB.repository}: not tagged by the kit")
        return
    ecr.delete_repository(repositoryName=LAB.repository, force=True)  # images included
    report.deleted.append(f"ECR repository {LAB.repository} (with its images)")


def _teardown_discovery(
    session: boto3.Session, report: TeardownReport, wait: bool, poll: Callable[..., bool]
) -> None:
    sd = session.client("servicediscovery")
    namespaces = [
        ns
        for p in sd.get_paginator("list_namespaces").paginate()
        for ns in p["Namespaces"]
        if ns["Name"].lower() == LAB.namespace.lower()  # DNS names ignore case
    ]
    for ns in namespaces:
        services = [
            s
            for p in sd.get_paginator("list_services").paginate(
                Filters=[{"Name": "NAMESPACE_ID", "Values": [ns["Id"]], "Condition": "EQ"}]
            )
            for s in p["Services"]
        ]
        for svc in services:
            tags = sd.list_tags_for_resource(ResourceARN=svc["Arn"]).get("Tags", [])
            if not has_kit_tag(tags):
                report.skipped.append(f"Cloud Map service {svc['Name']}: not tagged by the kit")
                continue
            # A discovery service with registered instances cannot be deleted.
            for inst in sd.list_instances(ServiceId=svc["Id"]).get("Instances", []):
                sd.deregister_instance(ServiceId=svc["Id"], InstanceId=inst["Id"])
            sd.delete_service(Id=svc["Id"])
            report.deleted.append(f"Cloud Map service {svc['Name']}")
        tags = sd.list_tags_for_resource(ResourceARN=ns["Arn"]).get("Tags", [])
        if not has_kit_tag(tags):
            report.skipped.append(f"Cloud Map namespace {ns['Name']}: not tagged by the kit")
            continue
        op_id = sd.delete_namespace(Id=ns["Id"])["OperationId"]
        report.deleted.append(f"Cloud Map namespace {ns['Name']}")
        if wait:

            def finished(op_id: str = op_id, name: str = ns["Name"]) -> bool:
                status = sd.get_operation(OperationId=op_id)["Operation"]["Status"]
                if status == "FAIL":
                    raise BackendError(f"Deleting namespace {name} failed.")
                return status == "SUCCESS"

            if not poll(finished):
                report.errors.append(f"namespace {ns['Name']} still deleting at the timeout")


def _teardown_stack(
    session: boto3.Session, report: TeardownReport, wait: bool, poll: Callable[..., bool]
) -> None:
    cfn = session.client("cloudformation")
    stack = _kit_stack(cfn)
    if stack is None:
        if find_environment(session) is not None:
            report.skipped.append("lab environment: not created by the kit, left as it is")
        return
    stack_id = stack["StackId"]
    # ECS refuses to delete a cluster whose container instances are still registered, and
    # terminated instances can take a while to drop out: deregister the kit's own ones.
    ecs = session.client("ecs")
    clusters = ecs.describe_clusters(clusters=[LAB.cluster], include=["TAGS"])["clusters"]
    if any(c.get("status") == "ACTIVE" for c in clusters):
        for page in ecs.get_paginator("list_container_instances").paginate(cluster=LAB.cluster):
            for arn in page["containerInstanceArns"]:
                ecs.deregister_container_instance(
                    cluster=LAB.cluster, containerInstance=arn, force=True
                )
                report.deleted.append(f"container instance {arn.rsplit('/', 1)[-1]}")
    cfn.delete_stack(StackName=stack_id)
    report.deleted.append(f"CloudFormation stack {stack['StackName']} (requested)")
    if not wait:
        return
    last: dict[str, Any] = {}

    def gone() -> bool:
        last.update(cfn.describe_stacks(StackName=stack_id)["Stacks"][0])
        return not last["StackStatus"].endswith("_IN_PROGRESS")

    if not poll(gone):
        report.errors.append(f"stack {stack['StackName']} still {last.get('StackStatus')}")
    elif last["StackStatus"] == "DELETE_COMPLETE":
        report.stack_deleted = True
    else:
        reasons = "; ".join(_failure_reasons(cfn, stack_id)) or last.get("StackStatusReason")
        report.errors.append(f"stack {stack['StackName']} is {last['StackStatus']}: {reasons}")


def _leftovers(session: boto3.Session) -> list[str]:
    """ARNs still carrying the kit tag: the tagging API (regional) plus the two IAM roles."""
    tagging = session.client("resourcegroupstaggingapi")
    arns = [
        m["ResourceARN"]
        for p in tagging.get_paginator("get_resources").paginate(
            TagFilters=[{"Key": KIT_TAG_KEY, "Values": [KIT_TAG_VALUE]}]
        )
        for m in p["ResourceTagMappingList"]
    ]
    iam = session.client("iam")
    for role in (LAB.instance_role, LAB.service_role):
        try:
            got = iam.get_role(RoleName=role)["Role"]
        except ClientError as exc:
            if _code(exc) != "NoSuchEntity":
                raise
            continue
        if has_kit_tag(got.get("Tags")) and got["Arn"] not in arns:
            arns.append(got["Arn"])
    return sorted(arns)


def teardown(
    session: boto3.Session,
    wait: bool = True,
    *,
    delete_stack: bool = True,
    timeout_s: float = 1800,
    poll_s: float = 10,
    sleep: Callable[[float], None] = time.sleep,
) -> TeardownReport:
    """Delete everything the kit created in the session's region, in dependency order.

    ECS services in ``ECSCluster`` (scaled to 0, then deleted) → task definitions of the
    ``ecs-demo`` family → repository ``myrepo`` (with images) → Cloud Map discovery
    services → namespace → the kit's CloudFormation stack. Each learner resource is
    deleted only if it carries the kit tag; an environment the kit did not create is
    never touched. With ``wait`` it waits for each step and then lists anything still
    tagged as the kit's. Failures are collected in the report, not raised, so one stuck
    resource does not stop the rest of the cleanup.
    """
    report = TeardownReport(_region(session))

    def poll(done: Callable[[], bool]) -> bool:
        return _poll(done, timeout_s, poll_s, sleep)

    # Later steps depend on earlier ones: the namespace cannot go while its service has
    # instances, the cluster cannot go while services exist, and so on.
    with _step(report, "ECS services"):
        _teardown_services(session, report, wait, poll)
    with _step(report, "task definitions"):
        _teardown_task_definitions(session, report)
    with _step(report, "ECR repository"):
        _teardown_repository(session, report)
    with _step(report, "Cloud Map"):
        _teardown_discovery(session, report, wait, poll)
    if delete_stack:
        with _step(report, "lab environment stack"):
            _teardown_stack(session, report, wait, poll)
    if wait:
        with _step(report, "listing leftovers"):
            report.leftovers = _leftovers(session)
    return report
