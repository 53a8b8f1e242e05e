"""boto3 sessions and clients for the three backends, built one way.

The learner's code never branches on the backend: it asks :func:`connect` for an
:class:`AwsTarget` and makes clients from it. Only here do the backends differ:

- sandbox: ``endpoint_url`` = the sandbox's API, dummy credentials, its region;
- endpoint: ``AWS_ENDPOINT_URL``, credentials from the environment (dummy if none);
- aws: the default boto3 credential chain, nothing overridden.
"""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.config import Config

from labkit.config import Backend, LabConfig, coerce_region
from labkit.errors import CredentialsMissing, InputError, SandboxNotRunning
from labkit.names import DEFAULT_REGION

#: Dummy keys for local endpoints: boto3 insists on some, the sandbox ignores them.
DUMMY_ACCESS_KEY = "labkit-sandbox"
DUMMY_SECRET_KEY = "labkit-sandbox-secret"  # noqa: S105 (not a secret: a placeholder)


@dataclass(frozen=True)
class AwsTarget:
    """Where boto3 calls go: a session plus, for local backends, an endpoint URL."""

    backend: Backend
    session: boto3.session.Session
    region: str
    endpoint_url: str | None  # None → real AWS endpoints

    def client(self, service: str) -> Any:
        # boto3 itself honours AWS_ENDPOINT_URL, also on the "aws" backend.
        endpoint = self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL", "").strip() or None
        config = Config(
            retries={"max_attempts": 5, "mode": "standard"},
            # Endpoints other than AWS's do not serve per-operation host prefixes
            # (e.g. Cloud Map's DiscoverInstances on "data-servicediscovery.").
            inject_host_prefix=endpoint is None,
            user_agent_extra="ecs-labkit",
            # A loopback endpoint (the sandbox, a local emulator) is never reached through
            # an HTTP proxy: HTTP(S)_PROXY without NO_PROXY would get the signed calls.
            proxies={} if is_loopback(endpoint) else None,
        )
        return self.session.client(
            service, region_name=self.region, endpoint_url=self.endpoint_url, config=config
        )


def is_loopback(url: str | None) -> bool:
    """Whether ``url`` is on this machine (the sandbox, or a local emulator)."""
    host = urllib.parse.urlsplit(url).hostname if url else None
    return host in ("127.0.0.1", "localhost", "::1")


def sandbox_status():  # -> labkit.sandbox.SandboxStatus
    """The sandbox's status, running or not (imported when first needed)."""
    from labkit import sandbox

    return sandbox.status()


def connect(config: LabConfig) -> AwsTarget:
    """Resolve ``config`` to an :class:`AwsTarget`, or say what is missing."""
    if config.backend is Backend.SANDBOX:
        status = sandbox_status()
        if not status.running:
            raise SandboxNotRunning(
                "The offline sandbox is not running.",
                why=f"Its status says: {status.problem or 'nothing answers on its API port'}.",
                fix="Run `labkit sandbox up` in a terminal (or notebooks/00_start_here.ipynb, "
                "which starts it), then re-run this cell.",
            )
        if config.region and config.region != status.region:
            raise InputError(
                f"The sandbox serves region {status.region}, not {config.region}.",
                why="The offline sandbox provisions the lab's environment in one region only.",
                fix=f'Set region = "" (or "{status.region}") in the parameters cell.',
            )
        from pathlib import Path

        from labkit.sandbox.credentials import read_credentials

        # The sandbox answers only its own generated keys (kept in its home, owner-only).
        keys = read_credentials(Path(status.home))
        session = boto3.session.Session(
            aws_access_key_id=keys.access_key_id if keys else DUMMY_ACCESS_KEY,
            aws_secret_access_key=keys.secret_access_key if keys else DUMMY_SECRET_KEY,
            region_name=status.region,
        )
        return AwsTarget(Backend.SANDBOX, session, status.region, status.api_url)

    if config.backend is Backend.ENDPOINT:
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
        if not endpoint:
            raise CredentialsMissing(
                "The endpoint backend needs AWS_ENDPOINT_URL.",
                why="backend is 'endpoint' but AWS_ENDPOINT_URL is not set.",
                fix="export AWS_ENDPOINT_URL=http://host:port before starting Jupyter, "
                "or use backend = 'sandbox'.",
            )
        session = boto3.session.Session()
        if session.get_credentials() is None:
            session = boto3.session.Session(
                aws_access_key_id=DUMMY_ACCESS_KEY, aws_secret_access_key=DUMMY_SECRET_KEY
            )
        region = config.region or session.region_name or DEFAULT_REGION
        return AwsTarget(Backend.ENDPOINT, session, region, endpoint)

    # Credentials are looked up locally (environment, config files, SSO cache…) before
    # any call is made, so a learner without credentials never reaches AWS at all.
    try:
        session = boto3.session.Session()
        credentials = session.get_credentials()
    except Exception as exc:  # a broken profile or config file: botocore raises many types
        raise CredentialsMissing(
            "Your AWS credentials could not be read.",
            why=f"{exc.__class__.__name__}: {exc}",
            fix="Check AWS_PROFILE and ~/.aws/config (`aws configure list`), "
            "or use backend = 'sandbox'.",
        ) from None
    if credentials is None:
        raise CredentialsMissing(
            "No AWS credentials were found.",
            why="backend is 'aws' and boto3's default credential chain came up empty "
            "(no AWS_ACCESS_KEY_ID, no profile in ~/.aws/credentials or ~/.aws/config, "
            "no SSO login, no instance role). Nothing was sent to AWS.",
            fix="Run `aws configure` (or `aws sso login`, or set AWS_PROFILE) in a terminal, "
            "restart the kernel and re-run; or use backend = 'sandbox' (offline, free).",
        )
    region = config.region or session.region_name or DEFAULT_REGION
    if not config.region:  # from AWS_DEFAULT_REGION or ~/.aws/config: check it as well
        try:
            coerce_region(region)
        except InputError as error:
            raise InputError(
                f"Your AWS configuration's region {region!r} does not exist.",
                why=error.why,
                fix="Fix AWS_DEFAULT_REGION or the region in ~/.aws/config, or set region "
                f'in the parameters cell (the lab uses "{DEFAULT_REGION}").',
            ) from None
    if session.region_name != region:
        # The session carries the region too, for code that takes a session (labkit.backends.aws).
        session = boto3.session.Session(region_name=region)
    return AwsTarget(Backend.AWS, session, region, None)


def start_backend(config: LabConfig) -> str:
    """Start the sandbox if it is the backend (idempotent); describe where calls go."""
    if config.backend is Backend.SANDBOX:
        from labkit import sandbox

        return sandbox.up().describe()
    target = connect(config)
    where = target.endpoint_url or f"real AWS ({target.region}); this can cost money"
    if target.endpoint_url is None and os.environ.get("AWS_ENDPOINT_URL"):
        where = f"AWS_ENDPOINT_URL={os.environ['AWS_ENDPOINT_URL']} (boto3 honours it)"
    return f"Backend {target.backend.value}: calls go to {where}."
