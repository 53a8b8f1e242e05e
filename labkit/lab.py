"""The :class:`Lab`: validated settings + boto3 clients + the lab's names, in one object."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

from labkit.aws import AwsTarget, connect, is_loopback
from labkit.config import Backend, LabConfig
from labkit.errors import BackendError, CredentialsMissing, InputError, LabkitError
from labkit.names import KIT_TAG_KEY, KIT_TAG_VALUE, LAB, NOTEBOOKS, LabNames, has_kit_tag
from labkit.state import load_state, resolve_settings, update_state

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


def open_lab(**parameters: Any) -> Lab:
    """The Lab of notebooks 01–06: the settings chosen in notebook 00, unless a parameter
    (the ``parameters`` cell, papermill's ``-p``) or LABKIT_BACKEND says otherwise
    (labkit.state has the order). Prints one plain line of the settings in use and where
    each came from; stops at once when the backend's requirement is missing."""
    resolved = resolve_settings(check=False, **parameters)
    print(resolved.describe())
    resolved.check_requirements()  # before anything is done
    return Lab(resolved.config)


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
        self.names: LabNames = LAB
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

    def aws_environment(self) -> dict[str, str]:
        """Variables that point the ``aws`` CLI and a plain ``boto3.client()`` where labkit's
        clients go (the sandbox's endpoint and its own keys; on real AWS only the region)."""
        env = {"AWS_DEFAULT_REGION": self.region, "AWS_REGION": self.region}
        if self.target.endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.target.endpoint_url
            # Local endpoints serve no per-operation host prefixes ("data-servicediscovery.").
            env["AWS_DISABLE_HOST_PREFIX_INJECTION"] = "true"
        if self.backend is Backend.SANDBOX:
            credentials = self.target.session.get_credentials()
            env["AWS_ACCESS_KEY_ID"] = credentials.access_key
            env["AWS_SECRET_ACCESS_KEY"] = credentials.secret_key  # generated per sandbox
        if is_loopback(self.target.endpoint_url):
            from labkit.sandbox.context import no_proxy_value

            # Behind a company proxy, the aws CLI and boto3 would send the calls (and their
            # signatures) to the proxy, which cannot reach this machine's loopback anyway.
            env["NO_PROXY"] = env["no_proxy"] = no_proxy_value()
        return env

    def export_environment(self) -> None:
        """Point this process (the notebook's kernel, and every ``!aws …`` it runs) at the
        lab's backend, so the learner's own ``boto3.client("ecr")`` calls land there too."""
        import os
        import shutil
        import sysconfig

        import boto3

        os.environ.update(self.aws_environment())
        # boto3's default session caches credentials and region from before the change.
        boto3.DEFAULT_SESSION = None
        # The lab's own lines call `aws`: the kit's awscli sits beside this Python, which a
        # pipx install or an unactivated venv leaves off PATH.
        scripts = sysconfig.get_path("scripts")
        if shutil.which("aws") is None and shutil.which("aws", path=scripts):
            os.environ["PATH"] = os.pathsep.join([scripts, os.environ.get("PATH", "")])

    # boto3 clients, made on first use.
    ecr = cached_property(lambda self: self.client("ecr"))
    ecs = cached_property(lambda self: self.client("ecs"))
    elbv2 = cached_property(lambda self: self.client("elbv2"))
    ec2 = cached_property(lambda self: self.client("ec2"))
    iam = cached_property(lambda self: self.client("iam"))
    sts = cached_property(lambda self: self.client("sts"))
    servicediscovery = cached_property(lambda self: self.client("servicediscovery"))

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
        identity = {"account": account, "arn": reply["Arn"], "region": self.region}
        self._remember_lab_began(identity)
        return identity

    # -- when this lab began: what the learner creates after it is the lab's ----------

    def _began_key(self, identity: dict[str, str]) -> str:
        return f"lab-began/{self.backend.value}/{identity['account']}/{identity['region']}"

    def _remember_lab_began(self, identity: dict[str, str]) -> None:
        key = self._began_key(identity)
        update_state(lambda state: state.setdefault(key, datetime.now(UTC).isoformat()))

    @property
    def began_at(self) -> datetime | None:
        """When labkit first worked in this account and region since the last cleanup.

        Resources with the lab's names created after it are the lab's (the learner made
        them with their own calls, tags or not); older ones are left alone by cleanup."""
        text = load_state().get(self._began_key(self.identity))
        return datetime.fromisoformat(text) if text else None

    def forget_lab_began(self) -> None:
        """After a full cleanup: the next lab begins when labkit next works here."""
        key = self._began_key(self.identity)
        update_state(lambda state: state.pop(key, None))

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
        """``MYSERVICE<random number>`` (step 37), the same on every re-run.

        An explicit ``service_name`` setting wins; else the kit's service already in the
        cluster; else the number remembered in the state file; else a new random number,
        remembered at once so a re-run never creates a second service.
        """
        if self.config.service_name:
            return self.config.service_name
        existing = find_kit_services(self)
        if existing:
            return existing[0]["serviceName"]
        key = self._service_name_key()
        drawn = f"{self.names.service_prefix}{random.randint(1000, 9999)}"
        # Under the lock: two kernels drawing at once both keep the first number saved.
        return update_state(
            lambda state: state.setdefault("service_names", {}).setdefault(key, drawn)
        )

    def _service_name_key(self) -> str:
        return f"{self.backend.value}:{self.account_id}:{self.region}:{self.names.cluster}"

    def forget_service_name(self) -> None:
        """Cleanup calls this, so the next lab run draws a fresh number."""
        key = self._service_name_key()
        update_state(lambda state: state.get("service_names", {}).pop(key, None))

    # -- tags: everything the kit creates carries one, so cleanup touches nothing else --

    def tags(self, style: str = "Key") -> list[dict[str, str]]:
        """The kit tag as the API wants it: "Key" (ECR, Cloud Map) or "key" (ECS)."""
        if style == "key":
            return [{"key": KIT_TAG_KEY, "value": KIT_TAG_VALUE}]
        return [{"Key": KIT_TAG_KEY, "Value": KIT_TAG_VALUE}]

    # -- guard rails -------------------------------------------------------------------

    def cost_notice(self, what: str) -> None:
        """In AWS mode, print what ``what`` roughly costs and that notebook 06 removes it."""
        if self.backend is not Backend.AWS:
            return
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


# -- the kit's services in the cluster (the service name depends on them) --------------


def describe_services(lab: Lab, names_or_arns: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    try:
        for start in range(0, len(names_or_arns), 10):  # the API takes 10 at a time
            reply = lab.ecs.describe_services(
                cluster=lab.names.cluster,
                services=names_or_arns[start : start + 10],
                include=["TAGS"],
            )
            found += reply["services"]
    except lab.ecs.exceptions.ClusterNotFoundException:
        return []  # no cluster (e.g. the lab environment is torn down): no services
    return found


def service_arns(lab: Lab) -> list[str]:
    """Every service in the lab's cluster; none when the cluster does not exist."""
    arns: list[str] = []
    try:
        for page in lab.ecs.get_paginator("list_services").paginate(cluster=lab.names.cluster):
            arns += page["serviceArns"]
    except lab.ecs.exceptions.ClusterNotFoundException:
        return []
    return arns


def find_kit_services(lab: Lab) -> list[dict[str, Any]]:
    """ACTIVE services in the cluster that the kit created (tagged), MYSERVICE-prefixed."""
    arns = service_arns(lab)
    return [
        s
        for s in describe_services(lab, arns)
        if s.get("status") == "ACTIVE"
        and s["serviceName"].startswith(lab.names.service_prefix)
        and has_kit_tag(s.get("tags"))
    ]
