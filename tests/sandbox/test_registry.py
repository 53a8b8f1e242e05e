"""Task 1 and 2 for real: ECR's API over a real registry, with ECR's access rules."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

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


def registry_digest(registry: str, repo: str, tag: str, user: str, password: str) -> str:
    """The manifest digest as the registry itself reports it, over plain HTTP."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    realm_request = urllib.request.Request(f"http://{registry}/v2/")
    try:
        opener.open(realm_request, timeout=5)
    except urllib.error.HTTPError as challenge:
        header = challenge.headers["WWW-Authenticate"]
    params = dict(part.split("=", 1) for part in header.split(" ", 1)[1].split(","))
    params = {k: v.strip('"') for k, v in params.items()}
    token_url = f"{params['realm']}?service={params['service']}&scope=repository:{repo}:pull"
    token_request = urllib.request.Request(token_url)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    token_request.add_header("Authorization", f"Basic {basic}")
    token = json.loads(opener.open(token_request, timeout=5).read())["token"]
    manifest_request = urllib.request.Request(
        f"http://{registry}/v2/{repo}/manifests/{tag}", method="HEAD"
    )
    manifest_request.add_header("Authorization", f"Bearer {token}")
    manifest_request.add_header("Accept", MANIFEST_V2)
    with opener.open(manifest_request, timeout=5) as response:
        return response.headers["Docker-Content-Digest"]


@pytest.fixture()
def docker_config(tmp_path: Path) -> Path:
    return tmp_path / "docker-config"


@pytest.fixture()
def repository(aws: Any, request: pytest.FixtureRequest) -> dict[str, Any]:
    ecr = aws("ecr")
    name = f"test-{request.node.name.lower().replace('_', '-')[:40]}"
    repo = ecr.create_repository(repositoryName=name)["repository"]
    yield repo
    try:
        ecr.delete_repository(repositoryName=name, force=True)
    except ecr.exceptions.RepositoryNotFoundException:
        pass


def test_repository_uri_is_reachable_by_stock_docker(sandbox: Any, repository: dict) -> None:
    assert repository["repositoryUri"] == f"{sandbox.registry}/{repository['repositoryName']}"


def test_push_without_login_is_refused(
    repository: dict, sample_image: str, docker_config: Path
) -> None:
    uri = repository["repositoryUri"]
    assert docker_cli(docker_config, "tag", sample_image, f"{uri}:latest").returncode == 0
    pushed = docker_cli(docker_config, "push", f"{uri}:latest")
    assert pushed.returncode != 0
    assert "no basic auth credentials" in pushed.stderr + pushed.stdout


def test_login_push_and_describe_images_show_the_true_digest(
    aws: Any, sandbox: Any, repository: dict, sample_image: str, docker_config: Path
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
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

    def set_ttl(seconds: int) -> None:
        body = json.dumps({"seconds": seconds}).encode()
        opener.open(urllib.request.Request(ttl_url, data=body, method="POST"), timeout=5)

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
    aws: Any, sandbox: Any, repository: dict, sample_image: str, docker_config: Path
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
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
    aws: Any, sandbox: Any, repository: dict, sample_image: str, docker_config: Path
) -> None:
    uri, name = repository["repositoryUri"], repository["repositoryName"]
    user, password = login_password(aws)
    docker_cli(
        docker_config, "login", "-u", user, "--password-stdin", sandbox.registry, stdin=password
    )
    docker_cli(docker_config, "tag", sample_image, f"{uri}:latest")
    assert docker_cli(docker_config, "push", f"{uri}:latest").returncode == 0
    ecr = aws("ecr")
    with pytest.raises(ecr.exceptions.RepositoryNotEmptyException):
        ecr.delete_repository(repositoryName=name)
