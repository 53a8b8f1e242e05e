"""AWS's answer to a request member outside the API's constraints (an enum, a range).

ELB and Cloud Map check each request against their API model before they act, and answer
a member outside it in one form, e.g. ELB's CreateTargetGroup:
``1 validation error detected: Value '0' at 'port' failed to satisfy constraint: Member
must have value greater than or equal to 1`` (kubernetes-sigs/aws-load-balancer-controller
#4238). A member's path is its model name with the first letter lower-cased, a list item
``NAME.N.member`` counted from 1 (Route 53's ``'changeBatch.changes.1.member.
resourceRecordSet.tTL'``); several violations are counted and joined with ``; ``.

botocore checks only the minimum of a range before it sends (``Port=0`` never leaves the
client); the maximum and the enums reach the server, and these checks answer them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def enum_violation(value: Any, path: str, allowed: Sequence[str]) -> str | None:
    """The violation of a member whose value is not one of ``allowed`` (case matters)."""
    if value is None or value in allowed:
        return None
    return (
        f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy "
        f"enum value set: [{', '.join(allowed)}]"
    )


def range_violation(value: Any, path: str, low: int, high: int) -> str | None:
    """The violation of a whole-number member outside ``low``..``high``; None for a value
    that is in range, absent, or not a number (the parser's to refuse, not this check's)."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    if isinstance(value, bool) or str(number) != str(value).strip():
        return None
    if number < low:
        bound = f"greater than or equal to {low}"
    elif number > high:
        bound = f"less than or equal to {high}"
    else:
        return None
    return (
        f"Value '{number}' at '{path}' failed to satisfy constraint: Member must have value {bound}"
    )


def detected(violations: Sequence[str | None]) -> str | None:
    """The whole message for a request's violations (None when there are none)."""
    found = [v for v in violations if v]
    if not found:
        return None
    count = f"{len(found)} validation error{'s' if len(found) > 1 else ''} detected"
    return f"{count}: {'; '.join(found)}"
