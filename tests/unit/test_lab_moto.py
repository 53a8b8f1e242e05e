"""The learner API end to end on moto (API only: no registry, no containers)."""

from __future__ import annotations

from datetime import timedelta

import boto3
import pytest

from labkit import ecr, ecs, taskdef, tasks, teardown
from labkit.errors import CheckFailed, InputError, PrerequisiteError
from labkit.lab import Lab, find_kit_services
from labkit.names import KIT_TAG_KEY, LAB
from labkit.tasks import task1, task2, task3, task4


def test_identity_and_account_guard(lab):
    assert lab.account_id == "123456789012"
    assert lab.instance_role_arn == "arn:aws:iam::123456789012:role/Ec2instanceRole"
    wrong = Lab.from_parameters(backend="aws", account_id=111111111111)
    with pytest.raises(InputError):
        wrong.identity  # noqa: B018


def test_task1_catch_up_makes_the_repository_and_statement(lab, catch_up, capsys):
    assert not task1.TASK.evaluate(lab).passed
    lab.cost_notice("repository")  # notebook 01's cell before the learner's call
    assert "💲 AWS mode" in capsys.readouterr().out
    catch_up(lab, task1.TASK)
    policy = ecr.repository_policy(lab)
    assert [s["Sid"] for s in policy["Statement"]] == [LAB.repository_statement]
    statement = policy["Statement"][0]
    assert statement["Principal"] == {"AWS": "arn:aws:iam::123456789012:role/Ec2instanceRole"}
    assert len(statement["Action"]) == len(ecr.REPOSITORY_ACTIONS)
    arn = ecr.find_repository(lab)["repositoryArn"]
    tags = lab.ecr.list_tags_for_resource(resourceArn=arn)["tags"]
    assert {"Key": KIT_TAG_KEY, "Value": "ecs-labkit"} in tags
    assert task1.TASK.evaluate(lab).passed


def test_check_never_raises_unless_strict(lab, monkeypatch, capsys):
    assert task2.TASK.check(lab) is None
    out = capsys.readouterr().out
    assert "❌ Task 2" in out and "Hint:" in out
    monkeypatch.setenv("LABKIT_STRICT", "1")
    with pytest.raises(CheckFailed):
        task2.TASK.check(lab)


def test_prerequisites_name_the_notebook(lab, catch_up):
    with pytest.raises(PrerequisiteError) as info:
        tasks.require(lab, 2)
    assert "01_task1_repository.ipynb" in info.value.fix
    catch_up(lab, task1.TASK)
    tasks.require(lab, 2)
    with pytest.raises(PrerequisiteError) as info:
        tasks.require(lab, 3)
    assert "02_task2_push_image.ipynb" in info.value.fix


def test_register_variant_reuses_identical_revision(lab, catch_up):
    catch_up(lab, task1.q1)
    first = taskdef.register_variant(lab, "rollout-demo")
    again = taskdef.register_variant(lab, "rollout-demo")
    assert (first.revision, first.reused) == (1, False)
    assert (again.revision, again.reused) == (1, True)
    variant = taskdef.register_variant(lab, "needs-room-demo")
    assert variant.revision == 2 and not variant.reused
    assert taskdef.register_variant(lab, "needs-room-demo").reused
    assert task3.TASK.evaluate(lab).passed


def test_service_name_is_random_but_stable(lab):
    name = lab.service_name
    assert name.startswith("MYSERVICE") and name[len("MYSERVICE") :].isdigit()
    assert Lab(lab.config).service_name == name  # a new kernel's Lab: remembered


def _build_service(lab, catch_up):
    catch_up(lab, task1.TASK, task3.TASK, task4.q1, task4.q2, task4.q3)
    return ecs.find_service(lab)


def test_task4_catch_up_makes_the_console_wizards_service(lab, catch_up):
    service = _build_service(lab, catch_up)
    assert task4.q1.evaluate(lab).passed and task4.q2.evaluate(lab).passed
    assert "runs no task yet" in task4.q3.evaluate(lab).message  # moto runs no containers
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


def test_cleanup_removes_only_what_the_kit_created(lab, catch_up):
    _build_service(lab, catch_up)
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


def test_console_views_show_what_exists(lab, catch_up, capsys):
    """Every view the notebooks call, as plain text (what papermill's logs show)."""
    from labkit import views

    views.tasks_view(lab)
    assert f"Service {lab.service_name} does not exist yet" in capsys.readouterr().out
    _build_service(lab, catch_up)
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


def test_export_environment_puts_the_kits_aws_cli_on_path(lab, monkeypatch):
    """A pipx install or an unactivated venv leaves the kit's `aws` off PATH; the lab's
    typed lines (`aws ecr get-login-password | docker login …`) need it."""
    import os
    import shutil
    import sysconfig

    scripts = sysconfig.get_path("scripts")
    assert shutil.which("aws", path=scripts), "awscli is a dependency: its aws is installed"
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    if shutil.which("aws"):
        pytest.skip("an aws CLI is on this machine's own PATH")
    lab.export_environment()
    assert shutil.which("aws") == os.path.join(scripts, "aws")
