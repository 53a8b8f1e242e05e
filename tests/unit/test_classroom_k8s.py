"""The shipped Zero to JupyterHub values: what can be checked offline (no cluster here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "z2jh-config.yaml"

#: Keys of the Zero to JupyterHub chart's values that the file may use (from its schema).
KNOWN = {
    "hub": {"config": None, "networkPolicy": {"enabled": None}},
    "singleuser": {
        "image": {"name": None, "tag": None},
        "defaultUrl": None,
        "memory": {"guarantee": None, "limit": None},
        "cpu": {"guarantee": None, "limit": None},
        "storage": {
            "type": None,
            "capacity": None,
            "extraVolumes": None,
            "extraVolumeMounts": None,
        },
        "extraEnv": None,
        "networkPolicy": {
            "enabled": None,
            "egressAllowRules": {"privateIPs": None, "nonPrivateIPs": None},
        },
        "extraContainers": None,
    },
    "cull": {"enabled": None, "timeout": None},
    "prePuller": {"hook": {"enabled": None}},
    "scheduling": {"userScheduler": {"enabled": None}},
}


class _UniqueKeys(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (YAML keeps the last one silently)."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        keys = [self.construct_object(key, deep=deep) for key, _ in node.value]
        repeated = {key for key in keys if keys.count(key) > 1}
        assert not repeated, f"repeated keys: {repeated}"
        return super().construct_mapping(node, deep)


def _unknown(values: dict, known: dict, where: str = "") -> list[str]:
    wrong = []
    for key, value in values.items():
        if key not in known:
            wrong.append(f"{where}{key}")
        elif isinstance(known[key], dict):
            assert isinstance(value, dict), f"{where}{key} must be a mapping"
            wrong += _unknown(value, known[key], f"{where}{key}.")
    return wrong


def test_values_parse_and_use_only_known_keys() -> None:
    values = yaml.load(VALUES.read_text(), _UniqueKeys)  # noqa: S506 - a SafeLoader
    assert _unknown(values, KNOWN) == []


def test_values_keep_learners_apart_and_give_each_a_docker_engine() -> None:
    values = yaml.load(VALUES.read_text(), _UniqueKeys)  # noqa: S506 - a SafeLoader
    user = values["singleuser"]
    assert user["networkPolicy"]["enabled"] is True
    assert user["networkPolicy"]["egressAllowRules"]["privateIPs"] is False
    (docker,) = user["extraContainers"]
    socket = user["extraEnv"]["DOCKER_HOST"].removeprefix("unix://")
    mounts = {m["mountPath"] for m in docker["volumeMounts"]}
    assert str(Path(socket).parent) in mounts
    volumes = {v["name"] for v in user["storage"]["extraVolumes"]}
    assert {m["name"] for m in docker["volumeMounts"]} <= volumes
