"""Task 2 on an endpoint whose ECR names AWS's registry host but which serves ``/v2/``.

Such an endpoint's repository URIs are ``123456789012.dkr.ecr.us-west-2.amazonaws.com/…``,
which does not resolve here; its own port serves the registry API. Notebook 00 says Task
2 works there and where it pushes; notebook 02, headless, pushes the sample image to the
endpoint's port, and the digest the endpoint's ECR lists is the one Docker recorded.
The endpoint is real parts (tests/registry_endpoint.py): moto_server, the CNCF registry
and one port in front of both.

    pytest -m notebooks tests/notebooks/test_endpoint_registry_e2e.py -v
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from labkit.names import LAB
from tests.notebooks.test_endpoint_e2e import (
    REGION,
    _client,
    _run,
    _text,
    kernels_pointed_at,
)
from tests.registry_endpoint import registry_endpoint

pytestmark = pytest.mark.notebooks


@pytest.fixture(scope="module")
def endpoint_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("registry-endpoint-home")
    with registry_endpoint(home, REGION) as url, kernels_pointed_at(url, home):
        yield url
    # The tags and the login notebook 02 left for this endpoint's (now gone) port.
    host = url.split("://", 1)[1]
    tags = subprocess.run(
        ["docker", "images", "--format", "{{.Repository}}:{{.Tag}}", f"{host}/*"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    if tags:
        subprocess.run(["docker", "rmi", *tags], capture_output=True, check=False)
    subprocess.run(["docker", "logout", host], capture_output=True, check=False)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("registry-endpoint-runs")


def test_02_pushes_to_the_endpoints_port_and_the_digests_match(
    endpoint_url: str, runs_dir: Path
) -> None:
    host = endpoint_url.split("://", 1)[1]
    aws_registry = f"123456789012.dkr.ecr.{REGION}.amazonaws.com"

    setup = _run("00", runs_dir, "00")
    assert setup.ok, setup.error
    text = _text(setup)
    assert f"its repository URIs name AWS's registry {aws_registry}" in text, text
    assert f"Task 2 pushes to {host}/REPOSITORY-NAME instead" in text

    task1 = _run("01", runs_dir, "01")
    assert task1.ok, task1.error
    ecr = _client(endpoint_url, "ecr")
    uri = ecr.describe_repositories(repositoryNames=[LAB.repository])["repositories"][0][
        "repositoryUri"
    ]
    assert uri == f"{aws_registry}/{LAB.repository}"  # the URI learners copy names AWS's host

    task2 = _run("02", runs_dir, "02")
    assert task2.ok, task2.error
    text = _text(task2)
    assert f"Docker pushes to {host}/{LAB.repository}" in text
    assert "Login Succeeded" in text and "✅ Exercise 2.1" in text
    assert "same image: yes" in text

    (image,) = ecr.describe_images(repositoryName=LAB.repository)["imageDetails"]
    assert image["imageTags"] == ["latest"]
    inspected = subprocess.run(
        [
            "docker",
            "image",
            "inspect",
            "--format",
            "{{json .RepoDigests}}",
            "amazon/amazon-ecs-sample",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"{host}/{LAB.repository}@{image['imageDigest']}" in inspected
