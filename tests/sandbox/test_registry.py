"""Task 1 and 2 for real: ECR's API over a real registry, with ECR's access rules."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
from cryptography import x509

from labkit.sandbox import lifecycle

pytestmark = pytest.mark.sandbox

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def docker_cli(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    """The stock docker CLI with its own config dir, so no stored login leaks in."""
    return subprocess.run(
        ["docker", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def login_password(aws: Any) -> tuple[str, str]:
    data = aws("ecr").get_authorization_token()["authorizationData"][0]
    user, password = base64.b64decode(data["authorizationToken"]).decode().split(":", 1)
    return user, password


_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def bearer_token(registry: str, scope: str, user: str, password: str) -> str:
    """A bearer token as Docker gets one: from the realm the registry's 401 names."""
    try:
        _opener.open(urllib.request.Request(f"http://{registry}/v2/"), timeout=5)
    except urllib.error.HTTPError as challenge:
        header = challenge.headers["WWW-Authenticate"]
    params = dict(part.split("=", 1) for part in header.split(" ", 1)[1].split(","))
    params = {k: v.strip('"') for k, v in params.items()}
    query = urllib.parse.urlencode({"service": params["service"], "scope": scope})
    token_request = urllib.request.Request(f"{params['realm']}?{query}")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    token_request.add_header("Authorization", f"Basic {basic}")
    return json.loads(_opener.open(token_request, timeout=5).read())["token"]


def registry_digest(registry: str, repo: str, tag: str, user: str, password: str) -> str:
    """The manifest digest as the registry itself reports it, over plain HTTP."""
    token = bearer_token(registry, f"repository:{repo}:pull", user, password)
    manifest_request = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}", method="HEAD"
    )
    manifest_request.add_header("Authorization", f"Bearer {token}")
    manifest_request.add_header("Accept", MANIFEST_V2)
    with _opener.open(manifest_request, timeout=5) as response:
        return response.headers["Docker-Content-Digest"]


@pytest.fixture()
def docker_config(tmp_path: Path) -> Path:
    return tmp_path / "docker-config"


@pytest.fixture()
def repository(aws: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    ecr = aws("ecr")
    name = f"test-{request.node.name.lower().replace('_', '-')[:40].rstrip('-')}"
    repo = ecr.create_repository(repositoryName=name)["repository"]
    yield repo
    try:
        ecr.delete_repository(repositoryName=name, force=True)
    except ecr.exceptions.RepositoryNotFoundException:
        pass


def test_repository_uri_is_reachable_by_stock_docker(sandbox: Any, repository: dict) -> None:
    assert repository["repositoryUri"] == f"{sandbox.registry}/{repository['repositoryName']}"


def test_push_without_login_is_refused(
    repository: dict, sample_image: str, docker_config: Path, untag_at_end: list[str]
) -> None:
    uri = repository["repositoryUri"]
    untag_at_end.append(f"{uri}:latest")
    assert docker_cli(docker_config, "tag", sample_image, f"{uri}:latest").returncode == 0
    pushed = docker_cli(docker_config, "push", f"{uri}:latest")
    assert pushed.returncode != 0
    assert "no basic auth credentials" in pushed.stderr + pushed.stdout


def test_login_push_and_describe_images_show_the_true_digest(
    aws: Any,
    sandbox: Any,
    repository: dict,
    sample_image: str,
    docker_config: Path,
    untag_at_end: list[str],
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
    untag_at_end.append(f"{uri}:v1")
    user, password = login_password(aws)
    login = docker_cli(
        docker_config,
        "login",
        "--username",
        user,
        "--password-stdin",
        sandbox.registry,
        stdin=password,
    )
    assert login.returncode == 0, login.stderr
    assert "Login Succeeded" in login.stdout
    docker_cli(docker_config, "tag", sample_image, f"{uri}:v1")
    pushed = docker_cli(docker_config, "push", f"{uri}:v1")
    assert pushed.returncode == 0, pushed.stderr
    pushed_digest = pushed.stdout.split("digest: ")[1].split()[0]

    details = aws("ecr").describe_images(repositoryName=name)["imageDetails"]
    assert [d["imageTags"] for d in details] == [["v1"]]
    assert details[0]["imageDigest"] == pushed_digest
    assert details[0]["imageDigest"] == registry_digest(
        sandbox.registry, name, "v1", user, password
    )
    # ECR's size is what a pull downloads: the compressed layers and the config.
    assert 500_000 < details[0]["imageSizeInBytes"] < 5_000_000

    listed = aws("ecr").list_images(repositoryName=name)["imageIds"]
    assert listed == [{"imageDigest": pushed_digest, "imageTag": "v1"}]
    got = aws("ecr").batch_get_image(repositoryName=name, imageIds=[{"imageTag": "v1"}])
    manifest = json.loads(got["images"][0]["imageManifest"])
    assert manifest["mediaType"] == MANIFEST_V2


def test_wrong_and_expired_tokens_are_refused(aws: Any, sandbox: Any, docker_config: Path) -> None:
    user, password = login_password(aws)
    forged = password[:-4] + ("AAAA" if not password.endswith("AAAA") else "BBBB")
    wrong = docker_cli(
        docker_config, "login", "-u", user, "--password-stdin", sandbox.registry, stdin=forged
    )
    assert wrong.returncode != 0
    assert "not a valid authorization token" in wrong.stderr

    ttl_url = f"{sandbox.api_url}/_labkit/registry/token-ttl"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    secret = lifecycle.env(sandbox.settings)["AWS_SECRET_ACCESS_KEY"]

    def set_ttl(seconds: int, key: str = secret) -> None:
        body = json.dumps({"seconds": seconds}).encode()
        headers = {"X-Labkit-Secret": key}
        opener.open(urllib.request.Request(ttl_url, body, headers, method="POST"), timeout=5)

    # Only the sandbox's own key holder may change it (another user on the host may not).
    with pytest.raises(urllib.error.HTTPError) as refused:
        set_ttl(1, key="someone-elses")
    assert refused.value.code == 403
    set_ttl(1)
    try:
        _, short_lived = login_password(aws)
    finally:
        set_ttl(12 * 3600)
    time.sleep(2.1)
    expired = docker_cli(
        docker_config,
        "login",
        "-u",
        user,
        "--password-stdin",
        sandbox.registry,
        stdin=short_lived,
    )
    assert expired.returncode != 0
    assert "expired" in expired.stderr


def test_batch_delete_image_and_force_delete_really_delete(
    aws: Any,
    sandbox: Any,
    repository: dict,
    sample_image: str,
    docker_config: Path,
    untag_at_end: list[str],
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
    untag_at_end += [f"{uri}:a", f"{uri}:b"]  # the test removes them too; not if it fails
    user, password = login_password(aws)
    docker_cli(
        docker_config, "login", "-u", user, "--password-stdin", sandbox.registry, stdin=password
    )
    for tag in ("a", "b"):
        docker_cli(docker_config, "tag", sample_image, f"{uri}:{tag}")
        assert docker_cli(docker_config, "push", f"{uri}:{tag}").returncode == 0
    ecr = aws("ecr")
    assert ecr.describe_images(repositoryName=name)["imageDetails"][0]["imageTags"] == ["a", "b"]

    # Untagging one of two tags keeps the image under the other, in ECR and the registry.
    ecr.batch_delete_image(repositoryName=name, imageIds=[{"imageTag": "a"}])
    assert ecr.describe_images(repositoryName=name)["imageDetails"][0]["imageTags"] == ["b"]
    docker_cli(docker_config, "rmi", f"{uri}:a", f"{uri}:b")
    assert docker_cli(docker_config, "pull", f"{uri}:a").returncode != 0
    assert docker_cli(docker_config, "pull", f"{uri}:b").returncode == 0

    ecr.delete_repository(repositoryName=name, force=True)
    docker_cli(docker_config, "rmi", f"{uri}:b")
    ecr.create_repository(repositoryName=name)
    # Same name again: the old image must not come back.
    assert ecr.list_images(repositoryName=name)["imageIds"] == []
    assert docker_cli(docker_config, "pull", f"{uri}:b").returncode != 0


def test_delete_repository_without_force_refuses_when_images_exist(
    aws: Any,
    sandbox: Any,
    repository: dict,
    sample_image: str,
    docker_config: Path,
    untag_at_end: list[str],
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
    untag_at_end.append(f"{uri}:latest")
    user, password = login_password(aws)
    docker_cli(
        docker_config, "login", "-u", user, "--password-stdin", sandbox.registry, stdin=password
    )
    docker_cli(docker_config, "tag", sample_image, f"{uri}:latest")
    assert docker_cli(docker_config, "push", f"{uri}:latest").returncode == 0
    ecr = aws("ecr")
    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName=name)


INSTANCE_ROLE = "arn:aws:iam::123456789012:role/Ec2instanceRole"
PULL = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
PUSH = [
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchCheckLayerAvailability",
]


def allow(aws: Any, repository: str, actions: list[str]) -> None:
    statement = {
        "Sid": "my_repository_statement",
        "Effect": "Allow",
        "Principal": {"AWS": INSTANCE_ROLE},
        "Action": actions,
    }
    aws("ecr").set_repository_policy(
        repositoryName=repository,
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )


def role_login(aws: Any, sandbox: Any) -> tuple[str, str]:
    """The instance role's registry login: AssumeRole, then GetAuthorizationToken as it."""
    creds = aws("sts").assume_role(RoleArn=INSTANCE_ROLE, RoleSessionName="container-instance")[
        "Credentials"
    ]
    ecr = boto3.client(
        "ecr",
        endpoint_url=sandbox.api_url,
        region_name=sandbox.region,
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, password = base64.b64decode(token).decode().split(":", 1)
    return user, password


def granted(sandbox: Any, repository: str, login: tuple[str, str]) -> list[str]:
    """The actions the token service grants when Docker asks for all of them."""
    scope = f"repository:{repository}:pull,push,delete,*"
    token = bearer_token(sandbox.registry, scope, *login)
    (access,) = jwt.decode(token, options={"verify_signature": False})["access"]
    assert access["name"] == repository
    return access["actions"]


def test_token_scopes_follow_the_repository_policy_action_by_action(
    aws: Any,
    sandbox: Any,
    repository: dict,
    sample_image: str,
    tmp_path: Path,
    untag_at_end: list[str],
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
    untag_at_end += [f"{uri}:v1", f"{uri}:by-role"]
    admin = login_password(aws)
    admin_docker, role_docker = tmp_path / "admin", tmp_path / "role"
    docker_cli(
        admin_docker, "login", "-u", admin[0], "--password-stdin", sandbox.registry, stdin=admin[1]
    )
    docker_cli(admin_docker, "tag", sample_image, f"{uri}:v1")
    assert docker_cli(admin_docker, "push", f"{uri}:v1").returncode == 0
    assert granted(sandbox, name, admin) == ["pull", "push", "delete", "*"]

    role = role_login(aws, sandbox)
    assert granted(sandbox, name, role) == []  # no repository policy yet

    allow(aws, name, PULL)
    assert granted(sandbox, name, role) == ["pull"]
    login = docker_cli(
        role_docker, "login", "-u", role[0], "--password-stdin", sandbox.registry, stdin=role[1]
    )
    assert login.returncode == 0, login.stderr
    docker_cli(role_docker, "rmi", f"{uri}:v1")
    pulled = docker_cli(role_docker, "pull", f"{uri}:v1")
    assert pulled.returncode == 0, pulled.stderr
    docker_cli(role_docker, "tag", sample_image, f"{uri}:by-role")
    pushed = docker_cli(role_docker, "push", f"{uri}:by-role")
    assert pushed.returncode != 0
    assert "denied" in (pushed.stderr + pushed.stdout).lower()
    # Deleting over the distribution API with the best token the role can get: refused.
    digest = registry_digest(sandbox.registry, name, "v1", *role)
    token = bearer_token(sandbox.registry, f"repository:{name}:delete", *role)
    delete = urllib.request.Request(
        f"http://{sandbox.registry}/v2/{name}/manifests/{digest}", method="DELETE"
    )
    delete.add_header("Authorization", f"Bearer {token}")
    with pytest.raises(urllib.error.HTTPError) as refused:
        _opener.open(delete, timeout=5)
    assert refused.value.code == 401
    assert [
        d["imageTags"] for d in aws("ecr").describe_images(repositoryName=name)["imageDetails"]
    ] == [["v1"]]

    allow(aws, name, PULL + PUSH)
    assert granted(sandbox, name, role) == ["pull", "push"]
    pushed = docker_cli(role_docker, "push", f"{uri}:by-role")
    assert pushed.returncode == 0, pushed.stderr

    allow(aws, name, PULL + PUSH + ["ecr:BatchDeleteImage"])
    assert granted(sandbox, name, role) == ["pull", "push", "delete", "*"]
    allow(aws, name, ["ecr:*"])
    assert granted(sandbox, name, role) == ["pull", "push", "delete", "*"]
    allow(aws, name, ["ecr:BatchDeleteImage"])
    assert granted(sandbox, name, role) == ["delete"]


def test_bearer_tokens_carry_the_signing_certificate_not_a_libtrust_key_id(
    aws: Any, sandbox: Any, repository: dict
) -> None:
    """x5c works with distribution 2.8 (every push here) and v3, which dropped ``kid``."""
    name = repository["repositoryName"]
    token = bearer_token(sandbox.registry, f"repository:{name}:pull", *login_password(aws))
    header = jwt.get_unverified_header(token)
    assert "kid" not in header
    assert header["alg"] == "RS256"
    (leaf,) = header["x5c"]
    cert = x509.load_der_x509_certificate(base64.b64decode(leaf))
    config = json.loads((Path(sandbox.home) / "registry.yml").read_text())
    root_bundle = Path(config["auth"]["token"]["rootcertbundle"]).read_bytes()
    assert cert == x509.load_pem_x509_certificate(root_bundle)
    claims = jwt.decode(
        token,
        cert.public_key(),
        algorithms=["RS256"],
        audience=config["auth"]["token"]["service"],
        issuer=config["auth"]["token"]["issuer"],
    )
    assert claims["access"] == [{"type": "repository", "name": name, "actions": ["pull"]}]


def test_task2_sees_each_docker_login_kept_by_a_credential_store(
    aws: Any, sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Docker Desktop's config (``credsStore``): the real docker CLI hands the login to
    the helper, leaving ``{}`` in config.json; Task 2's check still sees each new login."""
    from labkit.tasks import task2
    from tests.credential_helper import install_credential_helper

    helpers, config = tmp_path / "bin", tmp_path / "docker-config"
    store = install_credential_helper(helpers, "labkittest")
    config.mkdir()
    (config / "config.json").write_text(json.dumps({"credsStore": "labkittest"}))
    monkeypatch.setenv("PATH", f"{helpers}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    assert task2._docker_login_entry(sandbox.registry) == "none"

    entries, passwords = [], []
    for _ in range(2):
        user, password = login_password(aws)
        while password in passwords:  # a token is new each second
            time.sleep(0.2)
            user, password = login_password(aws)
        passwords.append(password)
        login = docker_cli(
            config, "login", "-u", user, "--password-stdin", sandbox.registry, stdin=password
        )
        assert login.returncode == 0, login.stderr
        entries.append(task2._docker_login_entry(sandbox.registry))

    # The CLI stored it through the helper, under the bare host, and kept no secret inline.
    kept = json.loads(store.read_text())
    assert list(kept) == [sandbox.registry]
    assert kept[sandbox.registry]["Secret"] == passwords[1]
    assert json.loads((config / "config.json").read_text())["auths"] == {sandbox.registry: {}}
    assert all(e is not None and e.startswith("helper:labkittest:") for e in entries), entries
    assert entries[0] != entries[1]
    assert not any(p in e for p in passwords for e in entries)
