"""What the lab environment roughly costs in your own AWS account.

A price table (on-demand, Linux, USD, taken once from the public price pages), the
estimate notebook 00 shows before anything billable is created, and the age-and-cost
line for a stack that exists. Everything here is approximate and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from labkit.errors import InputError

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
            "real figure). It keeps costing money until the teardown (notebook 06, "
            "`labkit cleanup`)."
        )


def stack_age(stack: dict[str, Any], region: str, now: datetime | None = None) -> EnvironmentAge:
    """The age and approximate cost so far of a described lab-environment stack."""
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
