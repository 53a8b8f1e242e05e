"""The lab's pre-provisioned pieces found by their lab names, for the AWS and endpoint backends.

Each ``find_*`` returns the resource as AWS describes it, or ``None`` when nothing has that
name; any other error is raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def error_text(exc: Exception) -> str:
    """``Code: message`` for an AWS error, ``Class: text`` for anything else."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', 'Error')}: {error.get('Message', '')}".strip(": ")
    return f"{exc.__class__.__name__}: {exc}"


def unless_absent(absent_code: str, call: Callable[..., Any], **params: Any) -> Any:
    """``call(**params)``, or ``None`` when AWS answers that the thing does not exist."""
    try:
        return call(**params)
    except ClientError as exc:
        if error_code(exc) != absent_code:
            raise
        return None


def find_role(iam: Any, name: str) -> dict[str, Any] | None:
    reply = unless_absent("NoSuchEntity", iam.get_role, RoleName=name)
    return reply["Role"] if reply else None


def find_cluster(ecs: Any, name: str) -> dict[str, Any] | None:
    """The ACTIVE cluster ``name``, with its tags (a deleted one stays INACTIVE a while)."""
    clusters = ecs.describe_clusters(clusters=[name], include=["TAGS"])["clusters"]
    return next((c for c in clusters if c.get("status") == "ACTIVE"), None)


def find_load_balancer(elbv2: Any, name: str) -> dict[str, Any] | None:
    reply = unless_absent("LoadBalancerNotFound", elbv2.describe_load_balancers, Names=[name])
    return next(iter(reply["LoadBalancers"]), None) if reply else None


def find_target_group(elbv2: Any, name: str) -> dict[str, Any] | None:
    reply = unless_absent("TargetGroupNotFound", elbv2.describe_target_groups, Names=[name])
    return next(iter(reply["TargetGroups"]), None) if reply else None
