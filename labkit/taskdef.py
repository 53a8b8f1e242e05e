"""Task 3: the lab's task-definition JSON, and what the console would clean up in it.

A **task definition** describes the containers of an application (image, memory, ports…);
a **task** is one running copy of it. The lab's JSON (kept verbatim in
``notebooks/task-definition.json``) is what the old console's "Configure via JSON" took.
The API takes less: botocore validates every request on your machine before sending it
and refuses any ``null`` (Python's ``None``) and any key outside the
``RegisterTaskDefinition`` input shape, such as the describe-only ``revision``. The
console quietly leaves those out; :func:`prepare` does the same in the open and lists
each key it dropped and why. The input shape is read from botocore's service model, so
the rules are the API's own.

The learner's flow (notebook 03): :func:`copy_lab_json` makes ``my-task-definition.json``,
the learner replaces the image placeholder in it (step 32), :func:`request_from_file`
turns it into the request (and a file for ``aws ecs register-task-definition
--cli-input-json``), and the learner registers it.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore.session

from labkit import ecr
from labkit.errors import InputError
from labkit.kit_files import kit_notebooks
from labkit.lab import Lab

#: The lab's JSON, verbatim (placeholder included).
LAB_TASK_DEFINITION = kit_notebooks() / "task-definition.json"

#: The text the lab asks you to replace (step 32).
IMAGE_PLACEHOLDER = "YOUR-REPOSITORY-URI"

#: The learner's copy of the lab's JSON (next to the notebooks), edited in step 32.
MY_TASK_DEFINITION = "my-task-definition.json"

#: The cleaned request written beside it, for ``aws ecs register-task-definition``.
MY_REQUEST_FILE = "my-task-definition.request.json"

#: Why each kind of key is dropped (printed with every dropped key).
NULL_REASON = (
    "null: botocore checks each parameter's type on your machine before sending and "
    "refuses None (the console leaves empty fields out)"
)
DESCRIBE_ONLY_REASON = (
    "describe-only: DescribeTaskDefinition returns it, RegisterTaskDefinition does not take it"
)
UNKNOWN_REASON = "not a RegisterTaskDefinition parameter (botocore refuses unknown keys)"

#: Tag holding a fingerprint of what was registered, so a re-run reuses the revision.
FINGERPRINT_TAG_KEY = "labkit:content-sha256"


@dataclass(frozen=True)
class Change:
    path: str  # e.g. "containerDefinitions[0].extraHosts"
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class PreparedTaskDefinition:
    """The request to send, and every difference from the JSON it came from."""

    request: dict[str, Any]
    dropped: list[Change] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [
            f"What the console would have cleaned up: dropped {len(self.dropped)} key(s) "
            "the API refuses"
        ]
        lines += [f"  🗑️  {d}" for d in self.dropped]
        if self.changed:
            lines += [f"Changed or added ({len(self.changed)}):"]
            lines += [f"  ✏️  {c}" for c in self.changed]
        return "\n".join(lines)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.request, sort_keys=True).encode()).hexdigest()


def load_lab_json(path: Path | str = LAB_TASK_DEFINITION) -> dict[str, Any]:
    """The lab's task definition as a dict (the file is never modified)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(
            f"The task definition file {path} cannot be read.",
            why=f"{exc.__class__.__name__}: {exc.strerror or exc}",
            fix="Check the path; the lab's own file is notebooks/task-definition.json.",
        ) from None
    return parse_json(text, path.name)


def parse_json(text: str, source: str = "the task definition") -> dict[str, Any]:
    """Parse task-definition JSON; a syntax error says where (line, column) and shows it."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        lines = text.splitlines() or [""]
        line = lines[min(exc.lineno, len(lines)) - 1]
        snippet = f"{exc.lineno:>4} | {line.rstrip()}\n     | {' ' * (exc.colno - 1)}^"
        raise InputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            why=f"The parser stopped here:\n{snippet}\n(A missing comma or quote, or a "
            "trailing comma, on this line or the one before, is the usual cause.)",
            fix="Fix that spot (compare with the JSON in the lab guide, step 31) and "
            "re-run this cell.",
        ) from None
    if not isinstance(data, dict):
        raise InputError(
            f"{source} is not a task definition.",
            why=f"It holds a JSON {type(data).__name__}; a task definition is an object {{…}}.",
            fix="Compare it with the JSON in the lab guide, step 31.",
        )
    return data


@cache
def _shapes() -> tuple[Any, frozenset[str]]:
    """RegisterTaskDefinition's input shape, and the keys only DescribeTaskDefinition
    returns (``revision``, ``status`` …), both from botocore's model of ECS."""
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    return shape, frozenset(model.shape_for("TaskDefinition").members) - set(shape.members)


def _clean(value: Any, shape: Any, path: str, dropped: list[Change]) -> Any:
    if shape.type_name == "structure" and isinstance(value, dict):
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if item is None:
                dropped.append(Change(where, NULL_REASON))
            elif key in _shapes()[1]:
                dropped.append(Change(where, DESCRIBE_ONLY_REASON))
            elif key not in shape.members:
                close = difflib.get_close_matches(key, list(shape.members), n=1, cutoff=0.8)
                if close:  # a typo would silently lose a setting (memory!): say so
                    raise InputError(
                        f"Unknown key {where!r} in the task definition.",
                        why=f"RegisterTaskDefinition has no {key!r} here; it has "
                        f"{close[0]!r}. Dropping it would lose that setting.",
                        fix=f"Rename {key!r} to {close[0]!r} and re-run this cell.",
                    )
                dropped.append(Change(where, UNKNOWN_REASON))
            else:
                out[key] = _clean(item, shape.members[key], where, dropped)
        return out
    if shape.type_name == "list" and isinstance(value, list):
        out_list = []
        for index, item in enumerate(value):
            if item is None:
                dropped.append(Change(f"{path}[{index}]", NULL_REASON))
            else:
                out_list.append(_clean(item, shape.member, f"{path}[{index}]", dropped))
        return out_list
    return value


def prepare(
    lab_json: dict[str, Any],
    repository_uri: str | None = None,
    *,
    compatibility: bool = True,
    tags: list[dict[str, str]] | None = None,
) -> PreparedTaskDefinition:
    """Drop what the API does not accept (nulls, describe-only keys) and say why.

    ``repository_uri`` fills in the image placeholder (step 32) for the kit's own
    registrations; the learner does that themselves. ``compatibility`` adds
    ``requiresCompatibilities: ["EC2"]`` (step 28) when missing; ``tags`` are added as
    given (the kit's tag, so notebook 06 finds what was registered).
    """
    prepared = PreparedTaskDefinition(request={})
    data = copy.deepcopy(lab_json)
    if repository_uri is not None:
        for index, container in enumerate(data.get("containerDefinitions") or []):
            image = container.get("image") if isinstance(container, dict) else None
            if isinstance(image, str) and IMAGE_PLACEHOLDER in image:
                container["image"] = image.replace(IMAGE_PLACEHOLDER, repository_uri)
                prepared.changed.append(
                    Change(
                        f"containerDefinitions[{index}].image", f"{image} → {container['image']}"
                    )
                )
    prepared.request = _clean(data, _shapes()[0], "", prepared.dropped)
    _require_essentials(prepared.request)
    if compatibility and "requiresCompatibilities" not in prepared.request:
        # Step 28 picks "EC2" in the console; the API's way of saying the same.
        prepared.request["requiresCompatibilities"] = ["EC2"]
        prepared.changed.append(Change("requiresCompatibilities", 'added ["EC2"] (step 28)'))
    if tags:
        prepared.request["tags"] = list(prepared.request.get("tags") or []) + tags
        shown = ", ".join(
            f"{t.get('key', t.get('Key'))}={t.get('value', t.get('Value'))}" for t in tags
        )
        prepared.changed.append(
            Change("tags", f"added {shown}: notebook 06 deletes only what carries this tag")
        )
    return prepared


def copy_lab_json(target: Path | str = MY_TASK_DEFINITION) -> Path:
    """Your copy of the lab's JSON to edit (steps 30–31); an existing copy is kept."""
    target = Path(target)
    if target.exists():
        print(
            f"♻️  {target} exists already (your edits are kept). To start over, delete it "
            "and run this cell again."
        )
    else:
        target.write_text(LAB_TASK_DEFINITION.read_text())
        print(f"📄 Copied the lab's task definition (step 31) to {target}.")
    return target


def request_from_file(
    path: Path | str = MY_TASK_DEFINITION,
    lab: Lab | None = None,
    request_file: Path | str | None = MY_REQUEST_FILE,
) -> dict[str, Any]:
    """Your edited JSON as a RegisterTaskDefinition request, cleaned as the console would.

    A JSON mistake stops here with its line and column. Nulls and describe-only keys are
    dropped (each listed, with why); the kit's tag is added when ``lab`` is given. The
    request is also written to ``request_file`` for
    ``aws ecs register-task-definition --cli-input-json file://…``. It does not fill in
    the image or add ``requiresCompatibilities``: those are yours (steps 32 and 28).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(
            f"{path} does not exist.",
            why="It is your copy of the lab's task definition, made by the cell above.",
            fix="Run the cell with labkit.taskdef.copy_lab_json() first.",
        )
    data = parse_json(path.read_text(), path.name)
    prepared = prepare(data, compatibility=False, tags=lab.tags("key") if lab else None)
    print(prepared)
    images = [c.get("image", "") for c in prepared.request.get("containerDefinitions", [])]
    if any(IMAGE_PLACEHOLDER in str(image) for image in images):
        print(f"⚠️  The image still says {IMAGE_PLACEHOLDER}: replace it in {path} (step 32).")
    if request_file is not None:
        Path(request_file).write_text(json.dumps(prepared.request, indent=2) + "\n")
        print(f"📄 The request is also in {request_file} (for the aws CLI).")
    return prepared.request


def _require_essentials(request: dict[str, Any]) -> None:
    """What RegisterTaskDefinition (EC2 launch type) needs, checked before calling it."""
    fix = "Compare it with the JSON in the lab guide, step 31, and re-run this cell."
    if not request.get("family"):
        raise InputError(
            "The task definition has no family.", why='Expected "family": "ecs-demo".', fix=fix
        )
    containers = request.get("containerDefinitions") or []
    if not containers:
        raise InputError(
            "The task definition has no containers.",
            why="containerDefinitions is missing or empty.",
            fix=fix,
        )
    task_memory = request.get("memory")
    for index, container in enumerate(containers):
        name = container.get("name") or f"#{index}"
        where = f"containerDefinitions[{index}] ({name})"
        if not str(container.get("image") or "").strip():
            raise InputError(
                f"Container {where} has no image.",
                why="Every container needs an image: for the lab, your repository URI "
                "followed by :latest.",
                fix='Add "image": "<your repository URI>:latest" (step 32).',
            )
        for key in ("memory", "memoryReservation"):
            value = container.get(key)
            if value is not None and (not isinstance(value, int) or value < 6):
                raise InputError(
                    f"Container {where} has {key} = {value!r}.",
                    why=f"{key} is a whole number of MiB; ECS needs at least 6.",
                    fix=f'Use "{key}": 128, as the lab guide does.',
                )
        memory = container.get("memory") or container.get("memoryReservation")
        if not memory and not task_memory:
            raise InputError(
                f"Container {where} has no memory limit.",
                why="With the EC2 launch type ECS needs memory or memoryReservation (MiB) "
                "for each container, or a task-level memory.",
                fix='Add "memory": 128 to the container, as the lab guide does.',
            )


@dataclass(frozen=True)
class RegisteredTaskDefinition:
    arn: str
    family: str
    revision: int
    image: str
    reused: bool

    def __str__(self) -> str:
        verb = "Reusing" if self.reused else "Registered"
        return f"{verb} {self.family}:{self.revision} (image {self.image})\n  {self.arn}"


def latest(lab: Lab, family: str | None = None) -> dict[str, Any] | None:
    """The highest ACTIVE revision of the family (the one the lab says is yours), with tags."""
    family = family or lab.names.task_family
    try:
        reply = lab.ecs.describe_task_definition(taskDefinition=family, include=["TAGS"])
    except lab.ecs.exceptions.ClientException:
        return None
    definition = reply["taskDefinition"]
    definition["tags"] = reply.get("tags", [])
    return definition


#: The image tag of notebook 05's capstone (version 2 of the page).
V2_TAG = "v2"


def task3_revision(lab: Lab) -> dict[str, Any] | None:
    """The revision Task 3 is judged by: the highest ACTIVE one that is not notebook 05's
    version 2 (its image ``<repository>:v2``), so the capstone does not undo Task 3."""
    newest = latest(lab)
    image = (newest or {}).get("containerDefinitions", [{}])[0].get("image", "")
    if newest is None or not image.endswith(f":{V2_TAG}"):
        return newest
    for definition in revisions(lab, newest=REUSE_WINDOW):
        if not definition["containerDefinitions"][0].get("image", "").endswith(f":{V2_TAG}"):
            return definition
    return newest


#: How many recent ACTIVE revisions to look through for an identical one.
REUSE_WINDOW = 10


def revisions(
    lab: Lab, family: str | None = None, newest: int | None = None
) -> list[dict[str, Any]]:
    """The ACTIVE revisions of ``family`` (default: the lab's), newest first, with their
    tags; with ``newest``, only among that many most recent of the prefix."""
    family = family or lab.names.task_family
    pages = lab.ecs.get_paginator("list_task_definitions").paginate(
        familyPrefix=family, status="ACTIVE", sort="DESC", PaginationConfig={"MaxItems": newest}
    )
    found = []
    for arn in (arn for page in pages for arn in page["taskDefinitionArns"]):
        reply = lab.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])
        if reply["taskDefinition"]["family"] == family:  # a prefix: not "ecs-demo2"
            found.append({**reply["taskDefinition"], "tags": reply.get("tags", [])})
    return found


def find_identical(lab: Lab, prepared: PreparedTaskDefinition) -> dict[str, Any] | None:
    """A recent ACTIVE revision registered from exactly this request (by fingerprint)."""
    for definition in revisions(lab, prepared.request["family"], REUSE_WINDOW):
        tags = {t["key"]: t["value"] for t in definition["tags"]}
        if tags.get(FINGERPRINT_TAG_KEY) == prepared.fingerprint:
            return definition
    return None


def register(lab: Lab, prepared: PreparedTaskDefinition) -> RegisteredTaskDefinition:
    """Register the prepared definition, or reuse a recent identical revision (re-runs)."""
    request = prepared.request
    identical = find_identical(lab, prepared)
    if identical is not None:
        return _registered(identical, reused=True)
    tags = lab.tags("key") + [{"key": FINGERPRINT_TAG_KEY, "value": prepared.fingerprint}]
    reply = lab.ecs.register_task_definition(**request, tags=tags)
    return _registered(reply["taskDefinition"], reused=False)


def _registered(definition: dict[str, Any], reused: bool) -> RegisteredTaskDefinition:
    return RegisteredTaskDefinition(
        arn=definition["taskDefinitionArn"],
        family=definition["family"],
        revision=definition["revision"],
        image=definition["containerDefinitions"][0]["image"],
        reused=reused,
    )


def register_variant(lab: Lab, label: str) -> RegisteredTaskDefinition:
    """A new revision of the lab's task definition that differs only in one environment
    variable (``LABKIT_DEPLOYMENT=<label>``): enough for ECS to roll out (notebook 05).
    Re-running with the same label reuses that revision."""
    prepared = prepare(load_lab_json(), ecr.repository_uri(lab))
    container = prepared.request["containerDefinitions"][0]
    container["environment"] = [{"name": "LABKIT_DEPLOYMENT", "value": label}]
    return register(lab, prepared)
