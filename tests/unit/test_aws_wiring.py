"""labkit.backends.aws wired into the product (notebook 00/06 helpers, ``labkit status``,
``labkit cleanup``, the Cloud Map namespace's VPC), on moto in-process: never real AWS."""

from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import boto3
import nbformat
import pytest
from moto import mock_aws

from labkit import ecs, environment, teardown
from labkit.backends.aws import provisioning
from labkit.cli import main
from labkit.config import LAB
from labkit.errors import InputError, PrerequisiteError
from labkit.lab import Lab
from labkit.tasks import task1, task3

REGION = "us-west-2"
NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

_spec = importlib.util.spec_from_file_location(
    "labkit_test_cfn_template_wiring", Path(__file__).with_name("test_cfn_template.py")
)
assert _spec and _spec.loader
_cfn_tests = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_cfn_tests)
MOTO_TEMPLATE: str = _cfn_tests.moto_variant()


@pytest.fixture
def empty_account(monkeypatch):
    """An AWS account with nothing of the lab in it; provision() uses the moto template."""
    monkeypatch.setattr(
        provisioning,
        "provision",
        functools.partial(provisioning.provision, template_body=MOTO_TEMPLATE),
    )
    with mock_aws():
        yield Lab.from_parameters(backend="aws", region=REGION)


def _stacks() -> list[dict]:
    summaries = boto3.client("cloudformation", region_name=REGION).list_stacks()
    return [s for s in summaries["StackSummaries"] if s["StackStatus"] != "DELETE_COMPLETE"]


def test_sandbox_mode_cells_say_not_needed_and_do_nothing(capsys):
    lab = Lab.from_parameters(backend="sandbox")  # never connects: nothing to do
    assert environment.show_cost_estimate(lab) is None
    assert environment.ensure_environment(lab, confirm_cost=True) is None
    assert environment.show_age_and_cost(lab) is None
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3 and all("not needed in the sandbox" in line for line in lines)


def test_aws_mode_without_confirmation_shows_the_cost_and_creates_nothing(empty_account, capsys):
    estimate = environment.show_cost_estimate(empty_account)
    assert estimate is not None and estimate.region == REGION
    assert "$" in capsys.readouterr().out
    with pytest.raises(PrerequisiteError) as info:
        environment.ensure_environment(empty_account)  # the default: False
    assert "confirm_cost = True" in info.value.fix
    for unclear in ("yes", 1, "", None):
        with pytest.raises(InputError):
            environment.ensure_environment(empty_account, confirm_cost=unclear)
    with pytest.raises(PrerequisiteError):
        environment.ensure_environment(empty_account, confirm_cost="false")  # labkit run -p
    assert _stacks() == []


def test_aws_mode_provisions_then_namespace_goes_in_the_lab_vpc(empty_account, capsys):
    lab = empty_account
    env = environment.ensure_environment(lab, confirm_cost="true")  # labkit run -p … true
    assert env is not None and env.created_by_kit and env.vpc_id
    out = capsys.readouterr().out
    assert "Ready for the lab." in out or "Lab environment in" in out
    assert len(_stacks()) == 1
    again = environment.ensure_environment(lab, confirm_cost=False)  # found: no new stack
    assert again.stack_id == env.stack_id and len(_stacks()) == 1
    age = environment.show_age_and_cost(lab)
    assert age is not None and "so far" in capsys.readouterr().out

    default_vpc = lab.ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])
    assert env.vpc_id not in [v["VpcId"] for v in default_vpc["Vpcs"]]
    assert ecs.namespace_vpc_id(lab) == env.vpc_id
    seen: dict = {}
    lab.servicediscovery.meta.events.register(
        "provide-client-params.servicediscovery.CreatePrivateDnsNamespace",
        lambda params, **_: seen.update(params),
    )
    ecs.ensure_namespace(lab)
    assert seen["Vpc"] == env.vpc_id  # the lab's VPC, not the default one


def test_cleanup_command_tears_down_and_fails_when_something_is_left(
    empty_account, catch_up, monkeypatch, capsys
):
    lab = empty_account
    environment.ensure_environment(lab, confirm_cost=True)
    catch_up(lab, task1.TASK, task3.TASK)
    # moto's DeleteStack leaves the instance and the internet gateway behind (see
    # test_aws_account.py), so the report lists them and the command exits 1.
    assert main(["cleanup", "-p", "backend", "aws", "-p", "region", REGION]) == 1
    out = capsys.readouterr().out
    assert "🧹 Deleted" in out and "Teardown in us-west-2" in out
    assert "CloudFormation stack labkit-ecs-lab" in out and "Still tagged" in out
    assert _stacks() == []
    assert lab.ecr.describe_repositories()["repositories"] == []

    # Twice is fine: the stack is gone; what the tagging API still lists is reported again.
    assert main(["cleanup", "-p", "backend", "aws", "-p", "region", REGION]) == 1
    assert "Nothing to delete" in capsys.readouterr().out

    def denied(session, report, *_):
        report.fail("lab environment stack: AccessDenied")

    monkeypatch.setattr(provisioning, "kit_tagged_leftovers", lambda session: [])
    assert main(["cleanup", "-p", "backend", "aws", "-p", "region", REGION]) == 0
    monkeypatch.setattr(provisioning, "remove_stack", denied)
    assert main(["cleanup", "-p", "backend", "aws", "-p", "region", REGION]) == 1
    assert "FAILED    lab environment stack" in capsys.readouterr().out


def test_status_command_in_aws_mode(empty_account, capsys):
    assert main(["status", "-p", "backend", "aws", "-p", "region", REGION]) == 0
    out = capsys.readouterr().out
    assert "Backend: aws" in out and "account 123456789012" in out and REGION in out
    assert "No lab environment in this region yet" in out
    environment.ensure_environment(empty_account, confirm_cost=True)
    capsys.readouterr()
    assert main(["status", "-p", "backend", "aws", "-p", "region", REGION]) == 0
    out = capsys.readouterr().out
    assert "created by the kit" in out and "has existed for" in out


def test_status_command_in_sandbox_mode_when_it_is_down(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LABKIT_SANDBOX_HOME", str(tmp_path))
    assert main(["status", "-p", "backend", "sandbox"]) == 3
    assert "labkit sandbox up" in capsys.readouterr().out


def test_provider_environment_is_used_as_is(lab, capsys):
    """The unit ``lab`` fixture is a provider-style environment the kit did not create."""
    env = environment.ensure_environment(lab, confirm_cost=False)
    assert env is not None and not env.created_by_kit and env.complete
    assert environment.show_age_and_cost(lab) is None
    report = teardown.teardown(lab)
    assert report.ok and any("not created by the kit" in s for s in report.skipped)
    assert lab.ecs.describe_clusters(clusters=[LAB.cluster])["clusters"][0]["status"] == "ACTIVE"
    assert "using it as it is" in capsys.readouterr().out


def test_notebooks_00_and_06_call_the_wiring():
    nb00 = "\n".join(c.source for c in nbformat.read(NOTEBOOKS / "00_start_here.ipynb", 4).cells)
    for call in (
        "show_cost_estimate(lab)",
        "ensure_environment(lab, confirm_cost=confirm_cost)",
        "show_age_and_cost(lab)",
    ):
        assert f"labkit.environment.{call}" in nb00
    params = next(
        c.source
        for c in nbformat.read(NOTEBOOKS / "00_start_here.ipynb", 4).cells
        if "parameters" in c.metadata.get("tags", [])
    )
    assert "confirm_cost: bool = False" in params  # never a silent yes
    nb06 = [c.source for c in nbformat.read(NOTEBOOKS / "06_cleanup.ipynb", 4).cells]
    calls = [s for s in nb06 if "labkit.teardown.teardown(lab" in s]
    assert len(calls) == 1 and "raise_on_failure=True" in calls[0]  # one teardown, all of it
    json.dumps(nb06)
