from __future__ import annotations

import json

import botocore.session
from botocore.validate import ParamValidator

from labkit import taskdef


def _validate(request):
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(request, shape)
    assert not report.has_errors(), report.generate_report()


def test_lab_file_is_kept_verbatim():
    text = taskdef.LAB_TASK_DEFINITION.read_text()
    data = json.loads(text)
    container = data["containerDefinitions"][0]
    assert container["image"] == "YOUR-REPOSITORY-URI:latest"
    assert container["extraHosts"] is None and container["links"] is None
    assert '"cpu": 0,' in text and text.startswith('{\n  "family": "ecs-demo",')


def test_lab_json_as_is_is_rejected_by_botocore():
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    assert ParamValidator().validate(taskdef.load_lab_json(), shape).has_errors()


def test_prepare_fills_uri_drops_nulls_and_validates():
    prepared = taskdef.prepare(taskdef.load_lab_json(), "127.0.0.1:4711/myrepo")
    container = prepared.request["containerDefinitions"][0]
    assert container["image"] == "127.0.0.1:4711/myrepo:latest"
    assert "extraHosts" not in container and "privileged" not in container
    dropped = {d.path for d in prepared.dropped}
    assert "containerDefinitions[0].extraHosts" in dropped
    assert len(prepared.dropped) == 16  # every null in the lab's JSON
    assert prepared.request["requiresCompatibilities"] == ["EC2"]
    assert container["portMappings"] == [{"hostPort": 80, "containerPort": 80, "protocol": "tcp"}]
    _validate(prepared.request)
    assert "extraHosts" in str(prepared)


def test_describe_only_and_unknown_keys_are_dropped_with_reasons():
    data = taskdef.load_lab_json()
    data.update(revision=3, status="ACTIVE", taskDefinitionArn="arn:x", compatibilities=["EC2"])
    data["requiresAttributes"] = [{"name": "com.amazonaws.ecs.capability.ecr-auth"}]
    data["containerDefinitions"][0]["madeUpKey"] = 1
    data["containerDefinitions"][0]["portMappings"][0]["alsoMadeUp"] = "x"
    prepared = taskdef.prepare(data, "repo/uri")
    reasons = {d.path: d.reason for d in prepared.dropped}
    assert reasons["revision"].startswith("describe-only")
    assert reasons["requiresAttributes"].startswith("describe-only")
    assert "not a RegisterTaskDefinition parameter" in reasons["containerDefinitions[0].madeUpKey"]
    assert "botocore refuses" in reasons["containerDefinitions[0].portMappings[0].alsoMadeUp"]
    _validate(prepared.request)


def test_fingerprint_is_stable_and_content_sensitive():
    a = taskdef.prepare(taskdef.load_lab_json(), "r/one")
    b = taskdef.prepare(taskdef.load_lab_json(), "r/one")
    c = taskdef.prepare(taskdef.load_lab_json(), "r/two")
    assert a.fingerprint == b.fingerprint != c.fingerprint
