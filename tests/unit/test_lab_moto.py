"""The learner API end to end on moto (API only: no registry, no containers)."""

from __future__ import annotations

import json
from datetime import timedelta

import boto3
import pytest

from labkit import ecr, ecs, taskdef, tasks, teardown
from labkit.config import KIT_TAG_KEY, LAB
from labkit.errors import CheckFailed, InputError, PrerequisiteError
from labkit.lab import Lab, find_kit_services
from labkit.tasks import task1, task2, task3


def test_identity_and_account_guard(lab):
    assert lab.account_id == "123456789012"
    assert lab.instance_role_arn == "arn:aws:iam::123456789012:role/Ec2instanceRole"
    wrong = Lab.from_parameters(backend="aws", account_id=111111111111)
    with pytest.raises(InputError):
        wrong.identity  # noqa: B018


def test_task1_create_or_reuse(lab, capsys):
    assert not task1.TASK.evaluate(lab).passed
    first = ecr.ensure_repository(lab)
    assert "💲 AWS mode" in capsys.readouterr().out  # the cost notice before creating
    again = ecr.ensure_repository(lab)
    assert first["repositoryArn"] == again["repositoryArn"]
    out = capsys.readouterr().out
    assert "reusing" in out and "💲" not in out
    ecr.ensure_repository_statement(lab)
    ecr.ensure_repository_statement(lab)
    policy = ecr.repository_policy(lab)
    assert [s["Sid"] for s in policy["Statement"]] == [LAB.repository_statement]
    statement = policy["Statement"][0]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/Ec2instanceRole"}
    assert len(statement["Action"]) == len(ecr.REPOSITORY_ACTIONS)
    tags = lab.ecr.list_tags_for_resource(resourceArn=first["repositoryArn"])["tags"]
    assert {"Key": KIT_TAG_KEY, "Value": "ecs-labkit"} in tags
    assert task1.TASK.evaluate(lab).passed


def test_statement_keeps_other_statements(lab):
    ecr.ensure_repository(lab)
    other = {"Sid": "someone_else", "Effect": "Allow", "Principal": "*", "Action": "ecr:ListImages"}
    lab.ecr.set_repository_policy(
        repositoryName="myrepo",
        policyText=json.dumps({"Version": "2012-10-17", "Statement": [other]}),
    )
    ecr.ensure_repository_statement(lab)
    sids = [s["Sid"] for s in ecr.repository_policy(lab)["Statement"]]
    assert sids == ["someone_else", LAB.repository_statement]


def test_check_never_raises_unless_strict(lab, monkeypatch, capsys):
    assert task2.TASK.check(lab) is None
    out = capsys.readouterr().out
    assert "❌ Task 2" in out and "Hint:" in out
    monkeypatch.setenv("LABKIT_STRICT", "1")
    with pytest.raises(CheckFailed):
        task2.TASK.check(lab)


def test_prerequisites_name_the_notebook(lab):
    with pytest.raises(PrerequisiteError) as info:
        tasks.require(lab, 2)
    assert "01_task1_repository.ipynb" in info.value.fix
    ecr.ensure_repository(lab)
    ecr.ensure_repository_statement(lab)
    tasks.require(lab, 2)
    with pytest.raises(PrerequisiteError) as info:
        tasks.require(lab, 3)
    assert "02_task2_push_image.ipynb" in info.value.fix


def test_register_reuses_identical_revision(lab):
    ecr.ensure_repository(lab)
    prepared, first = taskdef.register_lab_task_definition(lab)
    _, again = taskdef.register_lab_task_definition(lab)
    assert (first.revision, first.reused) == (1, False)
    assert (again.revision, again.reused) == (1, True)
    variant = taskdef.register_variant(lab, "rollout-demo")
    assert variant.revision == 2 and not variant.reused
    assert taskdef.register_variant(lab, "rollout-demo").reused
    assert task3.TASK.evaluate(lab).passed


def test_service_name_is_random_but_stable(lab):
    name = lab.service_name
    assert name.startswith("MYSERVICE") and name[len("MYSERVICE") :].isdigit()
    assert Lab(lab.config).service_name == name  # a new kernel's Lab: remembered


def _build_service(lab):
    ecr.ensure_repository(lab)
    taskdef.register_lab_task_definition(lab)
    return ecs.ensure_service(lab)


def test_service_as_the_console_wizard_makes_it(lab):
    service = _build_service(lab)
    assert ecs.ensure_service(lab)["serviceArn"] == service["serviceArn"]  # re-run reuses
    assert len(find_kit_services(lab)) == 1
    assert service["launchType"] == "EC2" and service["desiredCount"] == 1
    assert service["loadBalancers"][0]["containerName"] == "ecs-sample"
    assert service["loadBalancers"][0]["containerPort"] == 80
    assert service["serviceRegistries"][0]["containerPort"] == 80
    namespace = ecs.find_namespace(lab)
    assert namespace["Name"] == "myprivatednsnamespace"
    discovery = ecs.find_discovery_service(lab, namespace["Id"])
    details = lab.servicediscovery.get_service(Id=discovery["Id"])["Service"]
    assert details["DnsConfig"]["DnsRecords"] == [{"Type": "SRV", "TTL": 10}]


def test_cleanup_removes_only_what_the_kit_created(lab):
    _build_service(lab)
    # Something the kit did not create, with a name the kit would use.
    boto3.client("ecr", region_name="us-west-2").create_repository(repositoryName="otherrepo")
    report = teardown.teardown(lab, timeout_s=5)
    assert any("repository myrepo" in d for d in report.deleted)
    assert any("namespace" in d for d in report.deleted)
    assert teardown.leftovers(lab) == {}
    repos = lab.ecr.describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos] == ["otherrepo"]
    again = teardown.teardown(lab, timeout_s=5)  # safe to re-run
    assert again.deleted == []


def test_cleanup_leaves_untagged_lookalikes_from_before_the_lab(lab, monkeypatch):
    monkeypatch.setattr(teardown, "CLOCK_SKEW", timedelta(0))
    lab.ecr.create_repository(repositoryName="myrepo")  # made by hand, no kit tag
    lab.forget_lab_began()
    lab._remember_lab_began(lab.identity)  # ... before this lab began
    report = teardown.teardown(lab, timeout_s=5)
    assert report.deleted == []
    assert report.skipped == [
        "ECR repository myrepo (no kit tag, created before this lab began)",
        "lab environment (not created by the kit, left as it is)",  # the provider's, in AWS
    ]


def test_cleanup_removes_what_the_learner_made_untagged_during_the_lab(lab):
    lab.identity  # noqa: B018 — the lab begins when labkit first works in the account
    lab.ecr.create_repository(repositoryName="myrepo")  # the learner's own call, no tags
    report = teardown.teardown(lab, timeout_s=5)
    assert report.deleted == ["ECR repository myrepo and its images"]
    assert lab.began_at is None  # the next lab begins when labkit next works here


def test_console_views_show_what_exists(lab, capsys):
    """Every view the notebooks call, as plain text (what papermill's logs show)."""
    from labkit import views

    views.tasks_view(lab)
    assert f"Service {lab.service_name} does not exist yet" in capsys.readouterr().out
    _build_service(lab)
    for view in (
        views.identity_view,
        views.environment_tour,
        views.repository_view,
        views.policy_view,
        views.images_view,
        views.task_definition_view,
        views.target_group_view,
        views.details_view,
        views.tasks_view,
        views.events_view,
        views.targets_view,
    ):
        view(lab)
    views.lab_diagram()
    views.load_balancer_diagram()
    out = capsys.readouterr().out
    assert f"Details of {lab.service_name}" in out and "ecs-demo:1" in out
    assert "Target group myTargetgroup" in out and "TCP : 80" in out
    assert "ECR repository (Task 1) → image (Task 2)" in out
