"""The sandbox answers only calls signed with its own generated keys, as AWS does."""

from __future__ import annotations

import os
import stat
import urllib.request
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from labkit.sandbox.credentials import credentials_path, ensure_credentials, read_credentials


def _client(sandbox: Any, service: str, key: str, secret: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=sandbox.api_url,
        region_name=sandbox.region,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, proxies={}),
    )


CALLS = {
    "ecr": lambda c: c.describe_repositories(),
    "ecs": lambda c: c.list_clusters(),
    "servicediscovery": lambda c: c.list_namespaces(),
    "iam": lambda c: c.list_roles(),
    "elbv2": lambda c: c.describe_load_balancers(),
    "ec2": lambda c: c.describe_vpcs(),
    "sts": lambda c: c.get_caller_identity(),
}

UNKNOWN_KEY = {
    "ecr": "UnrecognizedClientException",
    "ecs": "UnrecognizedClientException",
    "servicediscovery": "UnrecognizedClientException",
    "iam": "InvalidClientTokenId",
    "elbv2": "InvalidClientTokenId",
    "ec2": "AuthFailure",
    "sts": "InvalidClientTokenId",
}

WRONG_SECRET = {
    "ecr": "InvalidSignatureException",
    "ecs": "InvalidSignatureException",
    "servicediscovery": "InvalidSignatureException",
    "iam": "SignatureDoesNotMatch",
    "elbv2": "SignatureDoesNotMatch",
    "ec2": "SignatureDoesNotMatch",
    "sts": "SignatureDoesNotMatch",
}


def test_keys_are_generated_private_and_kept(tmp_path) -> None:
    first = ensure_credentials(tmp_path / "home")
    assert first.access_key_id.startswith("AKIA") and len(first.access_key_id) == 20
    assert len(first.secret_access_key) == 40
    assert stat.S_IMODE(os.stat(credentials_path(tmp_path / "home")).st_mode) == 0o600
    assert read_credentials(tmp_path / "home") == first == ensure_credentials(tmp_path / "home")
    assert ensure_credentials(tmp_path / "other") != first


@pytest.mark.parametrize("service", sorted(CALLS))
def test_own_keys_pass_others_are_refused_with_aws_codes(sandbox: Any, service: str) -> None:
    own = read_credentials(sandbox.settings.home)
    CALLS[service](_client(sandbox, service, own.access_key_id, own.secret_access_key))

    with pytest.raises(ClientError) as unknown:
        CALLS[service](_client(sandbox, service, "AKIAOTHERSANDBOXKEY0", own.secret_access_key))
    assert unknown.value.response["Error"]["Code"] == UNKNOWN_KEY[service]

    with pytest.raises(ClientError) as forged:
        CALLS[service](_client(sandbox, service, own.access_key_id, "x" * 40))
    assert forged.value.response["Error"]["Code"] == WRONG_SECRET[service]


def test_unsigned_request_is_refused(sandbox: Any) -> None:
    request = urllib.request.Request(
        sandbox.api_url + "/",
        data=b"{}",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        },
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with pytest.raises(urllib.error.HTTPError) as refused:
        opener.open(request, timeout=10)
    assert refused.value.code == 403
    assert b"MissingAuthenticationTokenException" in refused.value.read()
