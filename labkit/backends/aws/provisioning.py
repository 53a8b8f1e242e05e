"""Your own AWS account: find the lab environment, or provision it with CloudFormation.

The lab assumes an account where its cluster, roles, load balancer and target group already
exist. This module finds them (the kit's stack, or the lab's names), creates them from
``resources/cloudformation/lab-environment.yaml`` only after an explicit cost confirmation,
and deletes the kit's stack at the end of the teardown; an environment the kit did not
create is never changed. Every function takes a ``boto3.Session`` (real AWS and moto alike).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import WaiterError

from labkit.backends.aws.access import POLICY_DOC, POLICY_PATH, RESOURCES, access_denied_explained
from labkit.backends.aws.pricing import EnvironmentAge, estimate_cost, stack_age
from labkit.backends.lookup import (
    find_cluster,
    find_load_balancer,
    find_role,
    find_target_group,
    unless_absent,
)
from labkit.backends.report import TeardownReport
from labkit.config import KIT_TAG_KEY, KIT_TAG_VALUE, LAB, has_kit_tag
from labkit.errors import BackendError, InputError, PrerequisiteError

#: The CloudFormation stack the kit creates (one per region).
STACK_NAME = "labkit-ecs-lab"
#: A second stack tag, so the kit recognises its stack even if it was renamed.
COMPONENT_TAG = {"Key": "labkit:component", "Value": "lab-environment"}
#: CloudFormation needs minutes for EC2 and the NLB, both ways.
STACK_TIMEOUT_S = 1800

_TERMINAL_OK = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"}
#: The boto3 waiter that follows a stack out of each kind of *_IN_PROGRESS state.
_STACK_WAITERS = {
    "CREATE": "stack_create_complete",
    "DELETE": "stack_delete_complete",
    "ROLLBACK": "stack_rollback_complete",
    "IMPORT": "stack_import_complete",
}


def load_template() -> str:
    """Return the CloudFormation template body that provisions the lab environment."""
    return (RESOURCES / "cloudformation" / "lab-environment.yaml").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- helpers
def _region(session: boto3.Session) -> str:
    if not session.region_name:
        raise InputError(
            "No AWS region is set.",
            why="The lab environment is regional and the boto3 session has no region.",
            fix="Pass boto3.Session(region_name='us-west-2') or set AWS_DEFAULT_REGION.",
        )
    return session.region_name


def _kit_stack(cfn: Any) -> dict[str, Any] | None:
    """The kit's live lab-environment stack, found by name first, then by its tags."""
    named = unless_absent("ValidationError", cfn.describe_stacks, StackName=STACK_NAME)
    for stack in named["Stacks"] if named else []:
        if has_kit_tag(stack.get("Tags")):
            return stack
    for stack in cfn.get_paginator("describe_stacks").paginate().search("Stacks[]"):
        if has_kit_tag(stack.get("Tags")) and COMPONENT_TAG in stack.get("Tags", []):
            return stack
    return None


def _probe_lab_names(session: boto3.Session) -> tuple[dict[str, str | None], str | None]:
    """ARN of each pre-provisioned lab resource found by its lab name (else None), and the
    target group's VPC."""
    iam, elbv2 = session.client("iam"), session.client("elbv2")
    cluster = find_cluster(session.client("ecs"), LAB.cluster)
    roles = {name: find_role(iam, name) for name in (LAB.instance_role, LAB.service_role)}
    lb = find_load_balancer(elbv2, LAB.load_balancer)
    tg = find_target_group(elbv2, LAB.target_group)
    found = {
        LAB.cluster: cluster["clusterArn"] if cluster else None,
        **{name: role["Arn"] if role else None for name, role in roles.items()},
        LAB.load_balancer: lb["LoadBalancerArn"] if lb else None,
        LAB.target_group: tg["TargetGroupArn"] if tg else None,
    }
    return found, tg.get("VpcId") if tg else None


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
        found, vpc_id = _probe_lab_names(session)
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
def _wait_for_stack(cfn: Any, stack_id: str, timeout_s: float, poll_s: float) -> dict[str, Any]:
    """Wait until the stack leaves its *_IN_PROGRESS state; return its last description.

    A waiter that stops on a failed state is fine: the caller reads the state it ended in.
    """
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    status = stack["StackStatus"]
    if not status.endswith("_IN_PROGRESS"):
        return stack
    waiter = _STACK_WAITERS.get(status.split("_")[0], "stack_update_complete")
    config = {"Delay": poll_s, "MaxAttempts": max(1, math.ceil(timeout_s / poll_s))}
    try:
        cfn.get_waiter(waiter).wait(StackName=stack_id, WaiterConfig=config)
    except WaiterError:
        pass  # a failed end state, or the timeout: the description below tells which
    stack = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    if stack["StackStatus"].endswith("_IN_PROGRESS"):
        raise BackendError(
            f"Stack {stack['StackName']} is still {stack['StackStatus']} after {timeout_s:.0f} s.",
            why="CloudFormation is slower than expected (EC2 and the NLB can take "
            "several minutes).",
            fix="Wait and call find_environment(session) again, or watch the stack "
            "in the CloudFormation console.",
        )
    return stack


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
    timeout_s: float = STACK_TIMEOUT_S,
    poll_s: float = 15,
    template_body: str | None = None,
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
                _wait_for_stack(cfn, existing.stack_id, timeout_s, poll_s)
            return find_environment(session) or existing
        if status in _TERMINAL_OK or status.endswith("_IN_PROGRESS"):
            return existing
        raise BackendError(
            f"The kit's stack {existing.stack_name} is in state {status}.",
            why="A previous provisioning or teardown did not finish.",
            fix="Run notebook 06 (or `labkit cleanup`), then provision again.",
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
            "with notebook 06 (`labkit cleanup`) when you finish.",
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
            Tags=[{"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE}, COMPONENT_TAG],
        )["StackId"]
        if not wait:
            return find_environment(session) or LabEnvironment(region, True, {}, ())
        stack = _wait_for_stack(cfn, stack_id, timeout_s, poll_s)
    if stack["StackStatus"] not in _TERMINAL_OK:
        reasons = _failure_reasons(cfn, stack_id)
        denied = next((r for r in reasons if "not authorized to perform" in r), None)
        fix = "Fix the cause, run `labkit cleanup`, then provision again."
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
def environment_age_and_cost(
    session: boto3.Session, now: datetime | None = None
) -> EnvironmentAge | None:
    """Report the age and approximate cost so far of the kit's stack (None if there is none)."""
    region = _region(session)
    with access_denied_explained():
        stack = _kit_stack(session.client("cloudformation"))
    return None if stack is None else stack_age(stack, region, now)


# --------------------------------------------------------------------------- teardown
def remove_stack(
    session: boto3.Session, report: TeardownReport, timeout_s: float, poll_s: float
) -> None:
    """The teardown's last AWS step: delete the kit's stack (never an environment it did
    not create), after deregistering the cluster's container instances."""
    cfn = session.client("cloudformation")
    stack = _kit_stack(cfn)
    if stack is None:
        if find_environment(session) is not None:
            report.leave("lab environment", "not created by the kit, left as it is")
        return
    stack_id = stack["StackId"]
    # ECS refuses to delete a cluster whose container instances are still registered, and
    # terminated instances can take a while to drop out: deregister the kit's own ones.
    ecs = session.client("ecs")
    if find_cluster(ecs, LAB.cluster) is not None:
        for page in ecs.get_paginator("list_container_instances").paginate(cluster=LAB.cluster):
            for arn in page["containerInstanceArns"]:
                ecs.deregister_container_instance(
                    cluster=LAB.cluster, containerInstance=arn, force=True
                )
                report.done(f"container instance {arn.rsplit('/', 1)[-1]}")
    cfn.delete_stack(StackName=stack_id)
    report.done(f"CloudFormation stack {stack['StackName']} (requested)")
    try:
        last = _wait_for_stack(cfn, stack_id, timeout_s, poll_s)
    except BackendError as exc:
        report.errors.append(exc.what)
        return
    if last["StackStatus"] == "DELETE_COMPLETE":
        report.stack_deleted = True
    else:
        reasons = "; ".join(_failure_reasons(cfn, stack_id)) or last.get("StackStatusReason")
        report.errors.append(f"stack {stack['StackName']} is {last['StackStatus']}: {reasons}")


def kit_tagged_leftovers(session: boto3.Session) -> list[str]:
    """ARNs still carrying the kit tag: the tagging API (regional) plus the two IAM roles."""
    tagging = session.client("resourcegroupstaggingapi")
    pages = tagging.get_paginator("get_resources").paginate(
        TagFilters=[{"Key": KIT_TAG_KEY, "Values": [KIT_TAG_VALUE]}]
    )
    arns = list(pages.search("ResourceTagMappingList[].ResourceARN"))
    iam = session.client("iam")
    for role in (find_role(iam, name) for name in (LAB.instance_role, LAB.service_role)):
        if role is not None and has_kit_tag(role.get("Tags")) and role["Arn"] not in arns:
            arns.append(role["Arn"])
    return sorted(arns)
