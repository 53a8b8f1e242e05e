"""ELB's answers where moto's differ, for target registration.

- A learner who passes the target group's name (``myTargetgroup``) as ``TargetGroupArn``
  gets ELB's ``ValidationError`` (moto answers TargetGroupNotFound, which suggests the
  group is missing rather than the argument malformed).
- A target's ``Port`` outside 1..65535 is refused before anything else, in the form of
  :mod:`~labkit.sandbox.validation.constraints` (moto stored it).
- RegisterTargets on an instance target group takes only instance ids of instances that
  exist: a malformed id is a ``ValidationError`` (``Instance ID '10.0.0.7' is not
  valid``, kubernetes-sigs/aws-load-balancer-controller#328 and #3668), an instance that
  does not exist ``InvalidTarget`` (``The following instances do not exist: 'i-…'``,
  the same project's #272). moto registered both. A loopback IPv4 address stays
  accepted: the sandbox's own tests reach a side server on loopback through it (see
  :mod:`labkit.sandbox.loadbalancer`); AWS refuses it as it refuses any IP here.
"""

from __future__ import annotations

import re
from typing import Any

from moto.elbv2.exceptions import ELBClientError, ValidationError

from labkit.sandbox.context import is_loopback_ip
from labkit.sandbox.validation.constraints import detected, range_violation

_ARN_PREFIX = "arn:"
#: TargetDescription's Port, as the ELBv2 API reference (and botocore's model) has it.
PORT_RANGE = (1, 65535)
#: EC2 instance ids: ``i-`` and 8 or 17 hexadecimal digits.
_INSTANCE_ID = re.compile(r"^i-(?:[0-9a-f]{8}|[0-9a-f]{17})$")


def check_target_group_arn(backend: Any, response: Any) -> None:
    """``TargetGroupArn`` must be an ARN of a target group (whether it exists is moto's)."""
    arn = response._get_param("TargetGroupArn") or ""
    if not arn.startswith(_ARN_PREFIX) or ":targetgroup/" not in arn:
        raise ValidationError(f"'{arn}' is not a valid target group ARN.")


def _targets(response: Any) -> list[dict[str, Any]]:
    targets = response._get_param("Targets") or []
    return [t for t in targets if isinstance(t, dict)]


def check_target_ports(backend: Any, response: Any) -> None:
    """Each target's ``Port`` within 1..65535 (checked first, as ELB checks the request
    against its API before it reads anything)."""
    message = detected(
        [
            range_violation(target.get("Port"), f"targets.{index}.member.port", *PORT_RANGE)
            for index, target in enumerate(_targets(response), start=1)
        ]
    )
    if message is not None:
        raise ValidationError(message)


def check_instances_exist(backend: Any, response: Any) -> None:
    """An instance target group's targets are instances that exist (a missing target
    group is moto's to refuse, with TargetGroupNotFound as ELB does)."""
    group = backend.target_groups.get(response._get_param("TargetGroupArn") or "")
    if group is None or getattr(group, "target_type", "instance") != "instance":
        return
    ids = [str(target.get("Id") or "") for target in _targets(response)]
    ids = [i for i in ids if not is_loopback_ip(i)]  # the sandbox's side servers
    for target_id in ids:
        if not _INSTANCE_ID.match(target_id):
            raise ValidationError(f"Instance ID '{target_id}' is not valid")
    missing = [i for i in dict.fromkeys(ids) if group.ec2_backend.get_instance_by_id(i) is None]
    if missing:
        names = ", ".join(f"'{i}'" for i in missing)
        raise ELBClientError("InvalidTarget", f"The following instances do not exist: {names}")


def _checks(*checks: Any) -> Any:
    def check_all(backend: Any, response: Any) -> None:
        for check in checks:
            check(backend, response)

    return check_all


#: Checks run before moto's ELBV2Response.<action> (see validation/__init__).
ELB_CHECKS = {
    "register_targets": _checks(check_target_ports, check_target_group_arn, check_instances_exist),
    "deregister_targets": _checks(check_target_ports, check_target_group_arn),
    "describe_target_health": _checks(check_target_ports, check_target_group_arn),
}
