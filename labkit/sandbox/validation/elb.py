"""ELB's answer to a target group named where its ARN belongs.

A learner who passes the target group's name (``myTargetgroup``) as ``TargetGroupArn``
gets ELB's ``ValidationError`` (moto answers TargetGroupNotFound, which suggests the
group is missing rather than the argument malformed).
"""

from __future__ import annotations

from typing import Any

from moto.elbv2.exceptions import ValidationError

_ARN_PREFIX = "arn:"


def check_target_group_arn(backend: Any, response: Any) -> None:
    """``TargetGroupArn`` must be an ARN of a target group (whether it exists is moto's)."""
    arn = response._get_param("TargetGroupArn") or ""
    if not arn.startswith(_ARN_PREFIX) or ":targetgroup/" not in arn:
        raise ValidationError(f"'{arn}' is not a valid target group ARN.")


#: Checks run before moto's ELBV2Response.<action> (see validation/__init__).
ELB_CHECKS = {
    action: check_target_group_arn
    for action in ("describe_target_health", "register_targets", "deregister_targets")
}
