"""Tasks 3 and 4 as exercises, on moto: each wrong answer gets the hint for its cause.

The checks read the real state through the API (here moto's); these tests make that
state the way a learner would (boto3 calls, a file they edited) and read the verdicts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labkit import ecr, ecs, taskdef
from labkit.names import has_kit_tag
from labkit.tasks import task1, task3, task4
from labkit.tasks.exercise import ____


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The kernel's working directory (the notebooks' folder) where my-task-definition.json
    lives."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _register(lab, image: str, family: str = "ecs-demo", compat=("EC2",), name="ecs-sample"):
    request = taskdef.prepare(taskdef.load_lab_json(), compatibility=False).request
    request["family"] = family
    request["containerDefinitions"][0]["image"] = image
    request["containerDefinitions"][0]["name"] = name
    if compat:
        request["requiresCompatibilities"] = list(compat)
    return lab.ecs.register_task_definition(**request)["taskDefinition"]


def _verdict(exercise, lab):
    result = exercise.evaluate(lab)
    return result.passed, result.message, result.hint


# -- Task 3 -------------------------------------------------------------------------


def test_task3_nothing_registered_then_each_wrong_image_has_its_hint(lab, catch_up):
    uri = ecr.repository_uri(catch_up(lab, task1.q1))
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "no 'ecs-demo' task definition is registered yet" in message
    assert "register_task_definition" in hint

    _register(lab, "YOUR-REPOSITORY-URI:latest")
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "still the placeholder" in message and "ecs-demo:1" in message
    assert "step 32" in hint and "register again" in hint

    _register(lab, uri)  # no tag
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "has no tag" in message and ":latest" in hint

    _register(lab, f"{uri}:v1")
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "tag 'v1'" in message

    _register(lab, "123456789012.dkr.ecr.us-west-2.amazonaws.com/otherrepo:latest")
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "another repository's URI" in message and uri in hint

    _register(lab, f"{uri}:latest:latest")  # the URI pasted with its tag, as step 8 shows it
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "carries two tags (:latest:latest)" in message
    assert "not in your registry" not in message and f"{uri}, without its tag" in hint

    _register(lab, "127.0.0.1:4711/myrepo:latest")  # another registry, same repository name
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "not in your registry" in message and "127.0.0.1:PORT" in hint

    _register(lab, f"{uri}:latest", compat=())
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "EC2 compatibility" in message and "Step 28" in hint

    _register(lab, f"{uri}:latest", name="web")
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "no container named 'ecs-sample'" in message

    definition = _register(lab, f"{uri}:latest")
    passed, message, _ = _verdict(task3.q2, lab)
    assert passed and f"ecs-demo:{definition['revision']}" in message
    assert task3.TASK.evaluate(lab).passed
    # The highest revision is the learner's: a later wrong one makes the check fail again.
    _register(lab, "YOUR-REPOSITORY-URI:latest")
    assert not task3.TASK.evaluate(lab).passed


def test_task3_misnamed_family_is_named(lab, catch_up):
    uri = ecr.repository_uri(catch_up(lab, task1.q1))
    _register(lab, f"{uri}:latest", family="ecs_demo")
    passed, message, hint = _verdict(task3.q2, lab)
    assert not passed and "ecs_demo" in message and '"ecs-demo"' in hint


def test_task3_file_exercise_reads_the_learners_file(lab, workdir, catch_up, capsys):
    uri = ecr.repository_uri(catch_up(lab, task1.q1))
    passed, message, hint = _verdict(task3.q1, lab)
    assert not passed and "does not exist" in message and "copy_lab_json" in hint

    path = taskdef.copy_lab_json()
    passed, message, hint = _verdict(task3.q1, lab)
    assert not passed and "placeholder" in message

    text = path.read_text()
    path.write_text(text.replace('"memory": 128,', '"memory": 128'))  # a missing comma
    passed, message, hint = _verdict(task3.q1, lab)
    assert not passed and "line 7, column 7" in message

    path.write_text(text.replace("YOUR-REPOSITORY-URI", uri))
    assert taskdef.copy_lab_json() == path  # an existing copy is kept
    assert uri in path.read_text()
    passed, message, _ = _verdict(task3.q1, lab)
    assert passed and f"{uri}:latest" in message

    capsys.readouterr()
    request = taskdef.request_from_file(path, lab)
    out = capsys.readouterr().out
    assert "dropped 16 key(s)" in out and "botocore checks each parameter" in out
    assert "notebook 06 deletes only what carries this tag" in out
    assert "requiresCompatibilities" not in request  # step 28 is the learner's
    written = json.loads(Path(taskdef.MY_REQUEST_FILE).read_text())
    assert written == request


def test_task3_catch_up_writes_the_file_and_registers(lab, catch_up):
    catch_up(lab, task1.q1, task3.TASK)
    assert task3.q1.evaluate(lab).passed and task3.TASK.evaluate(lab).passed
    definition = taskdef.latest(lab)
    assert has_kit_tag(definition["tags"]) and definition["requiresCompatibilities"] == ["EC2"]


# -- Task 4 -------------------------------------------------------------------------


@pytest.fixture
def task3_done(lab, catch_up):
    return catch_up(lab, task1.TASK, task3.TASK)


def _discovery(lab, record_type="SRV", ttl=10, name=None):
    namespace_id = ecs.ensure_namespace(lab)
    reply = lab.servicediscovery.create_service(
        Name=name or lab.service_name,
        NamespaceId=namespace_id,
        DnsConfig={
            "RoutingPolicy": "MULTIVALUE",
            "DnsRecords": [{"Type": record_type, "TTL": ttl}],
        },
    )
    return reply["Service"]


def _create_service(lab, registry_arn, **overrides):
    container = {"containerName": "ecs-sample", "containerPort": 80}
    params = dict(
        cluster="ECSCluster",
        serviceName=lab.service_name,
        taskDefinition="ecs-demo",
        desiredCount=1,
        launchType="EC2",
        loadBalancers=[{"targetGroupArn": ecs.target_group(lab)["TargetGroupArn"], **container}],
        serviceRegistries=[{"registryArn": registry_arn, **container}],
    )
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    return lab.ecs.create_service(**params)["service"]


def _answered(exercise, lab, *answers):
    result = exercise.evaluate(lab, answers)
    return result.passed, result.message, result.hint


def test_task4_namespace_checks_the_state_and_the_learners_id(task3_done):
    lab = task3_done
    passed, message, hint = _answered(task4.q1, lab, ____)
    assert not passed and "no namespace myprivatednsnamespace yet" in message
    assert "create_private_dns_namespace" in hint and "get_operation" in hint

    real = ecs.ensure_namespace(lab)  # the state holds the answer (an earlier run)...
    assert task4.q1.evaluate(lab).passed  # ...so the task's progress says done,
    passed, message, hint = _answered(task4.q1, lab, ____)  # but not the cell as shipped
    assert not passed and "still ____" in message
    operation = lab.servicediscovery.list_operations()["Operations"][0]["Id"]
    passed, message, hint = _answered(task4.q1, lab, operation)
    assert not passed and "OperationId" in hint and "Targets['NAMESPACE']" in hint
    passed, message, _ = _answered(task4.q1, lab, real)
    assert passed and real in message


def test_task4_namespace_solution_waits_for_its_operation(task3_done):
    # (A re-run's NamespaceAlreadyExists is Cloud Map's and the sandbox's, not moto's: the
    # notebook tests re-run it on the sandbox.)
    names = task4.q1.solve(task3_done)
    namespaces = task3_done.servicediscovery.list_namespaces()["Namespaces"]
    assert [n["Name"] for n in namespaces] == ["myprivatednsnamespace"]
    assert namespaces[0]["Type"] == "DNS_PRIVATE"
    assert names["namespace_id"] == namespaces[0]["Id"]  # defined for the later cells
    assert task4.q1.evaluate(task3_done, (names["namespace_id"],)).passed


def test_task4_discovery_service_causes(task3_done):
    lab = task3_done
    passed, message, hint = _verdict(task4.q2, lab)
    assert not passed and "does not exist yet" in message and "Exercise 4.1" in hint

    other = _discovery(lab, name="somethingelse")
    passed, message, hint = _verdict(task4.q2, lab)
    assert not passed and "found: somethingelse" in message and lab.service_name in hint
    lab.servicediscovery.delete_service(Id=other["Id"])

    wrong = _discovery(lab, record_type="A")
    passed, message, hint = _verdict(task4.q2, lab)
    assert not passed and "not SRV" in message and "bridge" in hint
    lab.servicediscovery.delete_service(Id=wrong["Id"])

    wrong = _discovery(lab, ttl=60)
    passed, message, hint = _verdict(task4.q2, lab)
    assert not passed and "TTL 60 s, not 10 s" in message and "step 42" in hint.lower()
    lab.servicediscovery.delete_service(Id=wrong["Id"])

    made = _discovery(lab)
    passed, message, _ = _verdict(task4.q2, lab)
    assert passed and "SRV records, TTL 10 s" in message
    assert not _answered(task4.q2, lab, ____)[0]  # no free pass for the cell as shipped
    passed, message, hint = _answered(task4.q2, lab, made["Id"])
    assert not passed and "'Arn'" in hint
    assert _answered(task4.q2, lab, made["Arn"])[0]


def test_task4_cells_after_41_without_it_name_the_exercise(task3_done, capsys):
    # Exercise 4.2 run without 4.1: a note naming 4.1, and the cell's call sees a blank
    # (so it says "not done yet" instead of a bare boto3 type error).
    assert task4.namespace_id(task3_done) is ____
    out = capsys.readouterr().out
    assert "namespace myprivatednsnamespace does not exist yet" in out and "Exercise 4.1" in out
    with task4.q2.attempt():
        task3_done.servicediscovery.create_service(Name="x", NamespaceId=____)
    assert "Exercise 4.2 is not done yet" in capsys.readouterr().out
    ecs.ensure_namespace(task3_done)
    assert task4.discovery_service_arn(task3_done) is ____
    assert "Exercise 4.2 first" in capsys.readouterr().out


def test_task4_service_causes_each_with_its_hint(task3_done):
    lab = task3_done
    registry = _discovery(lab)["Arn"]
    passed, message, hint = _verdict(task4.q3, lab)
    assert not passed and "does not exist" in message and "q3.hint(2)" in hint
    assert not task4.TASK.evaluate(lab).passed

    group = lab.elbv2.describe_target_groups(Names=["myTargetgroup"])["TargetGroups"][0]
    other_group = lab.elbv2.create_target_group(
        Name="otherGroup", Protocol="TCP", Port=80, VpcId=group["VpcId"]
    )["TargetGroups"][0]["TargetGroupArn"]
    container = {"containerName": "ecs-sample", "containerPort": 80}
    cases = [
        (dict(loadBalancers=None), "has no load balancer", "Steps 39–40"),
        (
            dict(loadBalancers=[{"targetGroupArn": other_group, **container}]),
            "target group otherGroup",
            "describe_target_groups",
        ),
        (
            dict(
                loadBalancers=[
                    {
                        "targetGroupArn": group["TargetGroupArn"],
                        "containerName": "ecs-sample",
                        "containerPort": 8080,
                    }
                ]
            ),
            "port 8080",
            "portMappings",
        ),
        (dict(serviceRegistries=None), "no service registry", "Step 41"),
        (dict(desiredCount=0), "asks for 0 tasks, not 1", "desiredCount=1"),
        (dict(role="ecsServiceRole"), "service role ecsServiceRole", "Leave role out"),
        (dict(launchType="FARGATE"), "not EC2", "Step 37"),
    ]
    for overrides, message_part, hint_part in cases:
        _create_service(lab, registry, **overrides)  # moto replaces a same-named service
        passed, message, hint = _verdict(task4.q3, lab)
        assert not passed, overrides
        assert message_part in message, (overrides, message)
        assert hint_part in hint, (overrides, hint)

    service = _create_service(lab, registry)
    passed, message, hint = _verdict(task4.q3, lab)
    # moto runs no containers: the configuration is right, nothing runs yet.
    assert not passed and "runs no task yet" in message and "wait cell" in hint
    assert service["serviceArn"]


# ECS's (and the sandbox's) InvalidParameterException messages for create_service.
CREATE_SERVICE_REFUSALS = [
    ("Creation of service was not idempotent.", "already ACTIVE"),
    (
        "You cannot specify an IAM role for services that require a service linked role.",
        "Leave role out",
    ),
    ("IAM roles are only valid for services configured to use load balancers.", "only for"),
    ("Container Name can not be blank.", "containerName='ecs-sample'"),
    ("The container web does not exist in the task definition.", "'ecs-sample' (step 31)"),
    ("The container ecs-sample did not have a container port 8080 defined.", "portMappings"),
    (
        "The target group with targetGroupArn arn:x does not have an associated load balancer.",
        "no load balancer",
    ),
    ("The target group with targetGroupArn arn:x does not exist.", "look it up by name"),
    (
        "When specifying 'bridge' for networkMode, values for 'containerName' and "
        "'containerPort' must be specified from the task definition.",
        "serviceRegistries too",
    ),
    (
        "The service registry arn:y has A records only; a task definition with networkMode "
        "'bridge' needs a Cloud Map service with SRV records (they carry the port as well "
        "as the address).",
        "delete that discovery service",
    ),
    ("Task definition does not support launch_type FARGATE.", "launchType='EC2'"),
]


@pytest.mark.parametrize(("message", "cause"), CREATE_SERVICE_REFUSALS)
def test_each_create_service_refusal_gets_its_own_cause(message, cause):
    from botocore.exceptions import ClientError

    error = {"Error": {"Code": "InvalidParameterException", "Message": message}}
    meaning = task4.q3.explain_refusal(ClientError(error, "CreateService"))
    assert cause in meaning, meaning
    others = [c for m, c in CREATE_SERVICE_REFUSALS if m != message]
    assert not any(other in meaning for other in others if other != cause)


def test_create_service_refusal_shown_in_the_cell(capsys):
    from botocore.exceptions import ClientError

    error = {"Error": {"Code": "InvalidParameterException", "Message": "Container Name "
                       "can not be blank."}}  # fmt: skip
    with task4.q3.attempt():
        raise ClientError(error, "CreateService")
    out = capsys.readouterr().out
    assert "Container Name can not be blank." in out and "containerName='ecs-sample'" in out
    assert "idempotent" not in out


def test_no_task_running_names_the_last_stopped_tasks_reason(task3_done, monkeypatch):
    lab = task3_done
    stopped = {
        "taskArn": "arn:aws:ecs:us-west-2:123456789012:task/ECSCluster/abc",
        "stoppedReason": "Task failed to start",
        "containers": [
            {
                "reason": "CannotPullContainerError: pull access denied for 1.dkr.ecr/myrepo, "
                "repository does not exist or may require 'docker login': denied: User: x "
                "is not authorized to perform: ecr:BatchGetImage"
            }
        ],
    }
    monkeypatch.setattr(ecs, "tasks", lambda lab, desired_status="RUNNING", service=None: (
        [stopped] if desired_status == "STOPPED" else []))  # fmt: skip
    _create_service(lab, _discovery(lab)["Arn"])
    passed, message, hint = _verdict(task4.q3, lab)
    assert not passed and "the last task stopped: CannotPullContainerError" in message
    assert "repository statement" in hint and "get_repository_policy" in hint


def test_task4_later_exercises_without_service_say_so(task3_done):
    for exercise in (task4.q4, task4.q5):
        passed, message, hint = _verdict(exercise, task3_done)
        assert not passed and "does not exist yet" in message and "4.3" in hint
