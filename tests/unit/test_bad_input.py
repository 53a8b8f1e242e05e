"""Bad input gives a clear LabkitError (what, why, what to do) and leaves nothing behind.

Fast: moto in-process (the ``lab`` fixture), a subprocess where the environment itself is
the input (no Docker), and never a call to real AWS.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import boto3
import pytest

from labkit import ecr, ecs, taskdef, tasks, teardown
from labkit.config import LabConfig, coerce_account_id, coerce_region, compare_repository_uri
from labkit.errors import (
    CredentialsMissing,
    InputError,
    LabkitError,
    PrerequisiteError,
    SandboxNotRunning,
)
from labkit.lab import Lab, find_kit_services
from labkit.names import LAB
from labkit.tasks import task1, task3, task4
from tests.conftest import remove_aws_credentials

ROOT = Path(__file__).resolve().parents[2]


def _clear(error: LabkitError) -> None:
    """Every learner-facing error says what happened, why, and what to do."""
    assert error.what and error.why and error.fix, repr(str(error))


# -- names, URIs, regions, account ids -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MyRepo", "uppercase"),
        ("my repo", "lowercase letters and digits"),
        ("r" * 257, "257 characters"),
        ("/myrepo", "starting and ending with a letter or digit"),
    ],
)
def test_repository_names_that_break_ecr_rules(lab, name, why):
    with pytest.raises(InputError) as info:
        Lab.from_parameters(backend="aws", repository_name=name)
    _clear(info.value)
    assert why in info.value.why
    assert lab.ecr.describe_repositories()["repositories"] == []  # nothing was created


AWS_URI = "123456789012.dkr.ecr.us-west-2.amazonaws.com/myrepo"


@pytest.mark.parametrize(
    ("pasted", "expected", "says"),
    [
        (AWS_URI.replace("myrepo", "myrpeo"), AWS_URI, "yours is 'myrepo'. A typo?"),
        (AWS_URI.replace("us-west-2", "us-east-1"), AWS_URI, "region us-east-1"),
        (AWS_URI.replace("123456789012", "210987654321"), AWS_URI, "account 210987654321"),
        (AWS_URI.replace("dkr.ecr", "dkr.ecs"), AWS_URI, "Its registry is"),
        (AWS_URI + ":latest", AWS_URI, "tag"),
        ("https://" + AWS_URI, AWS_URI, "http://"),
        ("127.0.0.1:4712/myrepo", "127.0.0.1:4711/myrepo", "yours is '127.0.0.1:4711'"),
        ("127.0.0.1:4711/myrepp", "127.0.0.1:4711/myrepo", "A typo?"),
        (AWS_URI, "127.0.0.1:4711/myrepo", "yours is '127.0.0.1:4711'"),
    ],
)
def test_repository_uri_with_a_typo_another_region_or_account(pasted, expected, says):
    with pytest.raises(InputError) as info:
        compare_repository_uri(pasted, expected)
    _clear(info.value)
    assert says in info.value.why or says in info.value.what
    assert expected in info.value.fix  # the right URI, to copy
    assert compare_repository_uri(f"  {expected} ", expected) == expected


def test_repository_uri_checked_against_the_labs_own(lab, catch_up):
    catch_up(lab, task1.q1)
    mine = ecr.repository_uri(lab)
    assert ecr.check_repository_uri(lab, mine) == mine
    with pytest.raises(InputError, match="not your registry"):
        ecr.check_repository_uri(lab, mine.replace("us-west-2", "eu-west-1"))
    with pytest.raises(InputError, match="account 999999999999"):
        ecr.check_repository_uri(lab, mine.replace("123456789012", "999999999999"))


@pytest.mark.parametrize("region", ["us-west-9", "eu-wset-1", "zz-north-1"])
def test_a_region_that_does_not_exist(region):
    with pytest.raises(InputError) as info:
        coerce_region(region)
    _clear(info.value)
    assert "does not exist" in info.value.what
    if region == "eu-wset-1":
        assert 'Did you mean "eu-west-1"' in info.value.fix
    assert coerce_region("eu-central-1") == "eu-central-1"


def test_sandbox_serves_one_region(monkeypatch):
    running = SimpleNamespace(running=True, region="us-west-2", api_url="http://127.0.0.1:9")
    monkeypatch.setattr("labkit.aws.sandbox_status", lambda: running)
    with pytest.raises(InputError) as info:
        Lab.from_parameters(backend="sandbox", region="eu-west-1").identity  # noqa: B018
    _clear(info.value)
    assert "us-west-2" in info.value.what and 'region = ""' in info.value.fix


@pytest.mark.parametrize("value", ["12345", "1234567890123", "12345678901a", 12345, -1])
def test_an_account_id_of_the_wrong_length(value):
    with pytest.raises(InputError) as info:
        coerce_account_id(value)
    _clear(info.value)
    assert "12 digits" in info.value.why


def test_papermill_int_coercion_keeps_leading_zeros():
    from papermill.cli import _resolve_type

    as_papermill_passes_it = _resolve_type("012345678901")
    assert as_papermill_passes_it == 12345678901  # the leading zero is gone…
    assert coerce_account_id(as_papermill_passes_it) == "012345678901"  # …and back
    assert coerce_account_id(1234567890) == "001234567890"
    assert LabConfig.from_parameters(account_id=12345678901.0).account_id == "012345678901"


# -- the task definition ----------------------------------------------------------------


def _lab_json() -> str:
    return taskdef.LAB_TASK_DEFINITION.read_text()


def _registered(lab) -> list[str]:
    return lab.ecs.list_task_definitions(familyPrefix=LAB.task_family)["taskDefinitionArns"]


def test_task_definition_json_with_a_syntax_error_says_where(tmp_path):
    broken = _lab_json().replace('"memory": 128,', '"memory": 128', 1)  # a missing comma
    path = tmp_path / "task-definition.json"
    path.write_text(broken)
    with pytest.raises(InputError) as info:
        taskdef.load_lab_json(path)
    _clear(info.value)
    line = next(i for i, t in enumerate(broken.splitlines(), 1) if '"extraHosts"' in t)
    assert f"line {line}, column" in info.value.what
    assert '"extraHosts": null' in info.value.why and "^" in info.value.why  # the snippet
    with pytest.raises(InputError, match="not a task definition"):
        taskdef.parse_json("[1, 2]")


@pytest.mark.parametrize(
    ("mutate", "says"),
    [
        (lambda c: c.update(memmory=c.pop("memory")), "Rename 'memmory' to 'memory'"),
        (lambda c: c.update(imag=c.pop("image")), "Rename 'imag' to 'image'"),
        (lambda c: c.pop("image"), "has no image"),
        (lambda c: c.pop("memory"), "has no memory limit"),
        (lambda c: c.update(memory=0), "at least 6"),
    ],
)
def test_task_definition_unknown_key_or_missing_image_or_memory(lab, catch_up, mutate, says):
    catch_up(lab, task1.q1)
    data = json.loads(_lab_json())
    mutate(data["containerDefinitions"][0])
    with pytest.raises(InputError) as info:
        taskdef.prepare(data, ecr.repository_uri(lab))
    _clear(info.value)
    assert says in str(info.value)
    assert _registered(lab) == []  # nothing registered


# -- the service -------------------------------------------------------------------------


def test_a_desired_count_below_zero(lab, catch_up):
    catch_up(lab, task1.TASK, task3.TASK, task4.q1, task4.q2, task4.q3)
    for bad in (-1, 1.5, "2", True):
        with pytest.raises(InputError) as info:
            ecs.scale(lab, bad)
        _clear(info.value)
        assert f"Desired count {bad!r}" in info.value.what
    assert ecs.find_service(lab)["desiredCount"] == 1


def test_a_notebook_run_before_the_ones_it_needs(lab, catch_up):
    for task, notebook in ((2, "01_task1_repository"), (4, "01_task1_repository")):
        with pytest.raises(PrerequisiteError) as info:
            tasks.require(lab, task)
        _clear(info.value)
        assert notebook in info.value.fix
    catch_up(lab, task1.TASK)
    with pytest.raises(PrerequisiteError, match="02_task2_push_image"):
        tasks.require(lab, 3)


# -- the environment: no Docker, no credentials, no sandbox ----------------------------


def test_without_docker_api_steps_work_and_docker_steps_say_why(tmp_path):
    """DOCKER_HOST at a dead socket, in a subprocess: as a learner without Docker has it."""
    script = textwrap.dedent(
        """
        from moto import mock_aws
        import boto3
        from labkit import ecr, images, shell
        from labkit.names import LAB
        from labkit.errors import DockerUnavailable
        from labkit.lab import Lab

        with mock_aws():
            boto3.client("ecs", region_name="us-west-2").create_cluster(clusterName=LAB.cluster)
            lab = Lab.from_parameters(backend="aws", region="us-west-2")
            lab.ecr.create_repository(repositoryName=lab.repository_name)  # API only: works
            print("API OK", ecr.repository_uri(lab))
            for step in (lambda: images.ensure_sample_image(),
                         lambda: shell.docker_login(lab, "127.0.0.1:1")):
                try:
                    step()
                except DockerUnavailable as error:
                    print("DOCKER:", error.what, "|", error.why, "|", error.fix)
        """
    )
    env = {
        **os.environ,
        "DOCKER_HOST": f"unix://{tmp_path}/dead.sock",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "LABKIT_STATE_DIR": str(tmp_path / "state"),
    }
    env.pop("AWS_ENDPOINT_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "API OK 123456789012.dkr.ecr.us-west-2.amazonaws.com/myrepo" in done.stdout
    lines = [x for x in done.stdout.splitlines() if x.startswith("DOCKER:")]
    assert len(lines) == 2, done.stdout
    for line in lines:
        assert "dead.sock" in line and "Docker Engine" in line and "still work" in line


@pytest.fixture
def no_credentials(monkeypatch, tmp_path):
    """An empty environment and empty AWS config files; IMDS off; every connect recorded."""
    remove_aws_credentials(monkeypatch, tmp_path)
    monkeypatch.setenv("LABKIT_BACKEND", "aws")
    connects: list = []

    def refuse(self, address):
        connects.append(address)
        raise OSError(f"test: no network ({address})")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return connects


def test_no_aws_credentials_in_aws_mode(no_credentials):
    lab = Lab.from_parameters(backend="aws")
    with pytest.raises(CredentialsMissing) as info:
        lab.identity  # noqa: B018
    _clear(info.value)
    assert "aws configure" in info.value.fix and "Nothing was sent" in info.value.why
    from labkit.cli import main

    assert main(["status"]) == 2
    assert main(["cleanup", "-p", "backend", "aws"]) == 2
    assert no_credentials == []  # not a single connection was attempted


def test_the_sandbox_not_running(monkeypatch, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("LABKIT_SANDBOX_HOME", str(tmp_path / "sandbox"))
    monkeypatch.setenv("LABKIT_SANDBOX_API_PORT", str(port))
    lab = Lab.from_parameters(backend="sandbox")
    with pytest.raises(SandboxNotRunning) as info:
        lab.identity  # noqa: B018
    _clear(info.value)
    assert "labkit sandbox up" in info.value.fix
    with pytest.raises(SandboxNotRunning):
        tasks.require(lab, 1)


# -- cleanup touches only what the lab made, and twice is fine --------------------------


def _lab_begins_now(lab, monkeypatch):
    """Restart the lab's clock: what exists already was made before this lab."""
    import time

    monkeypatch.setattr(teardown, "CLOCK_SKEW", timedelta(0))
    lab.forget_lab_began()
    time.sleep(0.01)
    lab._remember_lab_began(lab.identity)


def test_cleanup_leaves_untagged_look_alikes_alone_and_runs_twice(lab, catch_up, monkeypatch):
    catch_up(lab, task1.TASK, task3.TASK, task4.q1, task4.q2, task4.q3)
    sd = boto3.client("servicediscovery", region_name="us-west-2")
    other = lab.ecr.create_repository(repositoryName="someone-elses")["repository"]
    lab.ecs.register_task_definition(
        family=LAB.task_family,
        containerDefinitions=[{"name": "x", "image": "busybox", "memory": 64}],
    )  # an ecs-demo revision without the kit's tag
    foreign = lab.ecs.create_service(
        cluster=LAB.cluster,
        serviceName="MYSERVICE0001",
        taskDefinition=taskdef.latest(lab)["taskDefinitionArn"],
        desiredCount=1,
    )["service"]
    _lab_begins_now(lab, monkeypatch)  # the look-alikes above predate this lab
    first = teardown.teardown(lab)
    again = teardown.teardown(lab)
    assert any("repository myrepo" in d for d in first.deleted)
    assert again.deleted == []
    assert any("MYSERVICE0001 (no kit tag" in s for s in first.skipped)
    assert any("(no kit tag" in s and "task definition" in s for s in first.skipped)
    names = [r["repositoryName"] for r in lab.ecr.describe_repositories()["repositories"]]
    assert names == [other["repositoryName"]]
    still = lab.ecs.describe_services(cluster=LAB.cluster, services=[foreign["serviceArn"]])
    assert still["services"][0]["status"] == "ACTIVE"
    active = lab.ecs.list_task_definitions(familyPrefix=LAB.task_family, status="ACTIVE")
    assert len(active["taskDefinitionArns"]) == 1  # the untagged one only
    assert sd.list_namespaces()["Namespaces"] == []


@pytest.mark.parametrize("code", ["ExpiredToken", "InvalidClientTokenId"])
def test_credentials_aws_does_not_accept(lab, code):
    from botocore.stub import Stubber

    fresh = Lab.from_parameters(backend="aws", region="us-west-2")
    with Stubber(fresh.sts) as stub:
        stub.add_client_error("get_caller_identity", service_error_code=code)
        with pytest.raises(CredentialsMissing) as info:
            fresh.identity  # noqa: B018
    _clear(info.value)
    assert code in info.value.what and "aws sso login" in info.value.fix


def test_the_ecr_password_is_never_shown_in_full(lab):
    login = ecr.registry_login(lab)
    assert len(login.password) > 8
    for shown in (str(login), repr(login), login.masked_password):
        assert login.password not in shown
    from labkit.shell import mask

    assert login.password not in mask(f"echo {login.password}", [login.password])


def test_aws_mode_without_the_lab_environment_names_notebook_00():
    from moto import mock_aws

    with mock_aws():
        lab = Lab.from_parameters(backend="aws", region="us-west-2")
        with pytest.raises(PrerequisiteError) as info:
            ecs.namespace_vpc_id(lab)
        _clear(info.value)
        assert "00_start_here.ipynb" in info.value.fix and "confirm_cost" in info.value.fix


def test_a_configured_region_that_does_not_exist(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-wets-2")
    lab = Lab.from_parameters(backend="aws")
    with pytest.raises(InputError) as info:
        lab.identity  # noqa: B018
    _clear(info.value)
    assert "us-wets-2" in info.value.what and "AWS_DEFAULT_REGION" in info.value.fix


def test_cleanup_twice_after_the_environment_is_gone():
    """In AWS, a second cleanup runs after teardown deleted the cluster: still fine."""
    from moto import mock_aws

    with mock_aws():
        lab = Lab.from_parameters(backend="aws", region="us-west-2")
        for _ in range(2):
            assert teardown.teardown(lab).deleted == []
        assert teardown.leftovers(lab) == {}
        assert find_kit_services(lab) == [] and ecs.find_service(lab) is None
