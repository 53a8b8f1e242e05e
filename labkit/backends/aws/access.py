"""AWS "access denied", explained: which IAM action was refused, and the policy that grants it.

The kit's least-privilege learner policy is ``labkit/resources/iam/learner-policy.json``;
an error here names the refused action, says whether that policy grants it (so the policy
is probably not attached) and how to attach it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError, NoCredentialsError

from labkit.errors import BackendError, CredentialsMissing

#: Paths inside the repository / package, shown to learners in error messages.
POLICY_PATH = "labkit/resources/iam/learner-policy.json"
POLICY_DOC = "docs/aws-account.md beside the notebooks"

# A plain path, not importlib.resources: it reads the same under an editable install.
RESOURCES = Path(__file__).resolve().parents[2] / "resources"


def load_learner_policy() -> dict[str, Any]:
    """Return the least-privilege IAM policy a learner needs to run the lab in AWS mode."""
    return json.loads((RESOURCES / "iam" / "learner-policy.json").read_text(encoding="utf-8"))


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
