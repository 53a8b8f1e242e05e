"""The :class:`Lab`: validated settings + boto3 clients + the lab's names, in one object."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from labkit.aws import AwsTarget, connect
from labkit.config import (
    KIT_TAG_KEY,
    KIT_TAG_VALUE,
    NOTEBOOKS,
    Backend,
    LabConfig,
    LabNames,
)
from labkit.errors import BackendError, CredentialsMissing, InputError, LabkitError

_current: Lab | None = None

#: STS error codes that mean "these credentials are not (or no longer) valid".
REJECTED_CREDENTIALS = frozenset(
    {
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "AuthFailure",
        # botocore's own, raised before any request is sent:
        "NoCredentialsError",
        "UnauthorizedSSOTokenError",
        "SSOTokenLoadError",
        "TokenRetrievalError",
    }
)


def current_lab() -> Lab:
    """The Lab the notebook made last (checks use it), else one from the environment."""
    return _current if _current is not None else Lab()


class Lab:
    """One learner's lab: where the calls go, the clients, and every name.

    >>> lab = Lab(LabConfig.from_parameters(backend="sandbox"))  # doctest: +SKIP
    >>> lab.ecr.describe_repositories()                          # doctest: +SKIP
    """

    def __init__(self, config: LabConfig | None = None) -> None:
        global _current
        self.config: LabConfig = config or LabConfig.from_parameters()
        self.names: LabNames = self.config.names
        _current = self

    @classmethod
    def from_parameters(cls, **parameters: Any) -> Lab:
        """Coerce and validate a notebook's parameters (see LabConfig.from_parameters)."""
        return cls(LabConfig.from_parameters(**parameters))

    def __repr__(self) -> str:
        return f"Lab(backend={self.backend.value!r}, region={self.config.region or '…'!r})"

    # -- where calls go ----------------------------------------------------------------

    @property
    def backend(self) -> Backend:
        return self.config.backend

    def start(self) -> None:
        """Start the sandbox (if it is the backend) and print where calls go."""
        from labkit.aws import start_backend

        print(start_backend(self.config))

    @cached_property
    def target(self) -> AwsTarget:
        return connect(self.config)

    @property
    def region(self) -> str:
        return self.target.region

    def client(self, service: str) -> Any:
        return self.target.client(service)

    @cached_property
    def ecr(self) -> Any:
        return self.client("ecr")

    @cached_property
    def ecs(self) -> Any:
        return self.client("ecs")

    @cached_property
    def elbv2(self) -> Any:
        return self.client("elbv2")

    @cached_property
    def ec2(self) -> Any:
        return self.client("ec2")

    @cached_property
    def iam(self) -> Any:
        return self.client("iam")

    @cached_property
    def sts(self) -> Any:
        return self.client("sts")

    @cached_property
    def servicediscovery(self) -> Any:
        return self.client("servicediscovery")

    # -- who am I ----------------------------------------------------------------------

    @cached_property
    def identity(self) -> dict[str, str]:
        """Account and caller ARN from STS (never any key material)."""
        try:
            reply = self.sts.get_caller_identity()
        except LabkitError:
            raise  # already says what to do (sandbox not running, no credentials…)
        except Exception as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code", "")
            code = code or exc.__class__.__name__
            if code in REJECTED_CREDENTIALS:
                raise CredentialsMissing(
                    f"AWS did not accept your credentials ({code}).",
                    why="They are wrong, deactivated or expired (temporary and SSO "
                    "credentials expire after hours).",
                    fix="Refresh them (`aws sso login`, or `aws configure` with a new access "
                    "key), restart the kernel and re-run; or use backend = 'sandbox'.",
                ) from None
            # botocore raises many other types; all mean "unreachable"
            raise BackendError(
                f"Could not ask STS who you are ({self.backend.value} backend).",
                why=f"{exc.__class__.__name__}: {exc}",
                fix="Run notebooks/00_start_here.ipynb to start or check the backend.",
            ) from None
        account = reply["Account"]
        if self.config.account_id and self.config.account_id != account:
            raise InputError(
                f"You are signed in to account {account}, "
                f"not {self.config.account_id} as the parameters say.",
                why="account_id in the parameters cell does not match STS.",
                fix="Fix account_id (or leave it empty), or switch credentials.",
            )
        return {"account": account, "arn": reply["Arn"], "region": self.region}

    @property
    def account_id(self) -> str:
        return self.identity["account"]

    @property
    def instance_role_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:role/{self.names.instance_role}"

    # -- names chosen at run time ------------------------------------------------------

    @property
    def repository_name(self) -> str:
        return self.config.repository_name

    @cached_property
    def service_name(self) -> str:
        """MYSERVICE<random number>, chosen once and reused (see ecs.stable_service_name)."""
        from labkit import ecs

        return ecs.stable_service_name(self)

    # -- tags: everything the kit creates carries one, so cleanup touches nothing else --

    def tags(self, style: str = "Key") -> list[dict[str, str]]:
        """The kit tag as the API wants it: "Key" (ECR, Cloud Map) or "key" (ECS)."""
        if style == "key":
            return [{"key": KIT_TAG_KEY, "value": KIT_TAG_VALUE}]
        return [{"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE}]

    # -- guard rails -------------------------------------------------------------------

    def require(self, task: int) -> None:
        """Raise PrerequisiteError naming the notebook to run if task ``task-1`` is not done,
        or, on an endpoint that cannot serve task ``task``, saying so before anything runs."""
        from labkit import checks, endpoint

        endpoint.require_served(self, task)
        checks.require(self, task, skip=endpoint.unserved_tasks(self))

    def cost_notice(self, what: str) -> str:
        """In AWS mode, what ``what`` roughly costs and that notebook 06 removes it."""
        if self.backend is not Backend.AWS:
            return ""
        costs = {
            "repository": "ECR storage: about $0.10 per GB-month (the sample image is "
            "well under 1 GB, so cents)",
            "service": "the ECS service runs on the lab's EC2 container instances; the "
            "Network Load Balancer costs about $0.0225 per hour plus traffic; a Cloud Map "
            "namespace about $0.50 per month, prorated",
        }
        text = (
            f"💲 AWS mode: this creates billable resources: {costs.get(what, what)}. "
            f"Run {NOTEBOOKS[6]} when you are done; it removes everything the kit created."
        )
        print(text)
        return text
