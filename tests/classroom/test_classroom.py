"""Three learners on one hub: each runs the lab in their own server at the same time, none
can touch another's lab, the board shows each one's real state, and `down` leaves nothing.

Driven like a workshop: the hub's REST API with each learner's own password, notebooks
run by a kernel in the learner's own server. One hub serves every test of this module.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psutil
import pytest
import websocket
from botocore.config import Config
from botocore.exceptions import ClientError

from labkit.classroom import board, host, hub
from labkit.classroom.state import Classroom
from labkit.names import DEFAULT_REGION
from tests.conftest import free_port

pytestmark = pytest.mark.classroom

PASSWORD = "workshop-" + secrets.token_hex(4)
ARTIFACTS = Path("artifacts") / "classroom"
_loopback = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _require_classroom_host() -> None:
    missing = []
    if os.geteuid() != 0:
        missing.append("root (accounts are created)")
    missing += host.isolation_problems()
    if not Path("/usr/bin/configurable-http-proxy").exists():
        missing.append("configurable-http-proxy (Debian node-configurable-http-proxy)")
    if missing:
        message = "classroom tests need: " + "; ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _http(method: str, url: str, body: Any = None, token: str = "") -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"token {token}"} if token else {},
    )
    with _loopback.open(request, timeout=60) as reply:
        text = reply.read()
    return json.loads(text) if text else None


class LearnerSession:
    """One learner at the hub: their token (from their password) and their server."""

    def __init__(self, room: Classroom, name: str) -> None:
        self.state_dir, self.name = room.state_dir, name
        reply = _http(
            "POST",
            f"{room.url}/hub/api/users/{name}/tokens",
            {"auth": {"username": name, "password": PASSWORD}, "note": "test"},
        )
        self.token = reply["token"]
        self.entry = pwd.getpwnam(room.learner(name).unix_user)

    @property
    def room(self) -> Classroom:
        """As saved now: the spawner gives the sandbox fresh ports at each start."""
        return Classroom.load(self.state_dir)

    def hub(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f"{self.room.url}/hub/api{path}", body, self.token)

    def start_server(self) -> None:
        if "" in self.hub("GET", f"/users/{self.name}")["servers"]:
            return  # already started (the browser test logs one learner in first)
        self.hub("POST", f"/users/{self.name}/server")

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.hub("GET", f"/users/{self.name}")["servers"].get("")
            if server and server["ready"]:
                return
            time.sleep(1)
        raise AssertionError(f"{self.name}'s server did not become ready")

    def server_api(self, method: str, path: str, body: Any = None) -> Any:
        return _http(method, f"{self.room.url}/user/{self.name}/api{path}", body, self.token)

    def execute(self, code: str, timeout: float = 900) -> str:
        """Run ``code`` in a kernel of the learner's own server; returns its output."""
        kernel = self.server_api("POST", "/kernels", {"name": "python3"})
        url = self.room.url.replace("http", "ws") + (
            f"/user/{self.name}/api/kernels/{kernel['id']}/channels"
        )
        ws = websocket.create_connection(
            url, header=[f"Authorization: token {self.token}"], timeout=timeout
        )
        msg_id = uuid.uuid4().hex
        ws.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "username": self.name,
                        "session": uuid.uuid4().hex,
                        "msg_type": "execute_request",
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )
        output: list[str] = []
        try:
            while True:
                message = json.loads(ws.recv())
                if message.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind = message["msg_type"]
                if kind == "stream":
                    output.append(message["content"]["text"])
                elif kind == "error":
                    output.append("\n".join(message["content"]["traceback"]))
                elif kind == "execute_reply":
                    return "".join(output)
        finally:
            ws.close()
            self.server_api("DELETE", f"/kernels/{kernel['id']}")

    def sandbox_keys(self) -> dict[str, str]:
        path = Path(self.entry.pw_dir) / ".labkit" / "sandbox" / "credentials.json"
        return json.loads(path.read_text())

    def as_unix_user(self, argv: list[str]) -> subprocess.CompletedProcess:
        learner = self.room.learner(self.name)
        env = host.learner_env(self.entry, learner, self.room.python)
        return host.run_as(self.entry, env, argv, 120)

    def client(self, service: str, target: LearnerSession) -> Any:
        """boto3 with this learner's keys, pointed at ``target``'s sandbox API."""
        keys = self.sandbox_keys()
        port = self.room.learner(target.name).api_port
        return boto3.client(
            service,
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=DEFAULT_REGION,
            aws_access_key_id=keys["access_key_id"],
            aws_secret_access_key=keys["secret_access_key"],
            config=Config(retries={"max_attempts": 1}, proxies={}),
        )


RUN_LAB = """
import subprocess, sys
done = subprocess.run([sys.executable, "-m", "labkit.cli", "run", "--until", "04", "-q",
                       "-o", "runs/test", "--notebooks", "notebooks"],
                      capture_output=True, text=True)
print("EXIT", done.returncode)
print(done.stdout[-3000:])
print(done.stderr[-3000:])
"""


@pytest.fixture(scope="module")
def classroom(tmp_path_factory: pytest.TempPathFactory) -> Any:
    _require_classroom_host()
    state = tmp_path_factory.mktemp("classroom") / "state"
    suffix = secrets.token_hex(2)
    names = [f"t{suffix}-{who}" for who in ("ann", "bob", "cy")]
    roster = state.parent / "roster.txt"
    roster.write_text("\n".join(names) + "\n")
    room = hub.up(
        roster,
        state,
        "127.0.0.1",
        free_port(),
        PASSWORD,
        say=lambda *_: None,
        board_port=free_port(),
    )
    try:
        sessions = {name: LearnerSession(room, name) for name in names}
        yield state, sessions
    finally:
        hub.down(state, say=lambda *_: None, delete_accounts=True)


@pytest.fixture(scope="module")
def lab_done(classroom: Any) -> dict[str, str]:
    """Every learner starts their server and runs notebooks 00-04 (solved), all at once."""
    _, sessions = classroom
    for session in sessions.values():
        session.start_server()
    for session in sessions.values():
        session.wait_ready()
    with ThreadPoolExecutor(len(sessions)) as pool:
        runs = pool.map(lambda session: session.execute(RUN_LAB), sessions.values())
        outputs = dict(zip(sessions, runs, strict=True))
    return outputs


def test_learner_logs_in_through_the_hub_page_and_sees_the_notebooks(classroom: Any) -> None:
    """Chromium (Debian's, driven by Playwright) at the hub's login page: the learner types
    their name and password, their server spawns, and JupyterLab lists the lab's notebooks.
    Runs first, so the spawn is the one the login starts."""
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, require_browser

    require_browser()
    from playwright.sync_api import expect, sync_playwright

    state, sessions = classroom
    name = next(iter(sessions))
    room = Classroom.load(state)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, "--no-proxy-server"]
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(180_000)
            page.goto(f"{room.url}/hub/login")
            page.fill("input#username_input", name)
            page.fill("input#password_input", PASSWORD)
            page.click("#login_submit")
            # The spawn takes a while (Docker Engine, sandbox); JupyterLab then opens
            # the notebooks folder (Spawner.default_url).
            page.wait_for_url(f"**/user/{name}/lab/**")
            listing = page.locator(".jp-DirListing-content")
            # JupyterLab's first load in a fresh environment renders the listing after
            # expect's 5 s default: wait as long as for the spawn.
            for notebook in ("00_start_here.ipynb", "04_task4_service.ipynb"):
                expect(listing.get_by_text(notebook, exact=True)).to_be_visible(timeout=180_000)
            page.screenshot(path=str(ARTIFACTS / "learner-logged-in.png"))
            assert page.url.startswith(f"{room.url}/user/{name}/lab")
        finally:
            browser.close()


def test_each_learner_runs_the_lab_in_their_own_server(lab_done: dict[str, str]) -> None:
    for name, output in lab_done.items():
        assert "EXIT 0" in output, f"{name}:\n{output}"
        assert "All 5 notebook(s) passed" in output, f"{name}:\n{output}"


def test_board_shows_each_learners_real_state(classroom: Any, lab_done: Any) -> None:
    state, sessions = classroom
    room = Classroom.load(state)
    rows = {row.name: row for row in board.board(room)}
    for name in sessions:
        assert rows[name].sandbox == "healthy"
        assert [t["passed"] for t in rows[name].tasks] == [True] * 4, rows[name]
        assert rows[name].stuck == ""
    # One learner half-way: the board's actions reset them (a clean lab), then bring
    # them to the end of task 3.
    half, other = list(sessions.values())[2], list(sessions.values())[0]
    board.reset(room, half.name)
    rows = {row.name: row for row in board.board(room)}
    after_reset = rows[half.name]
    assert not any(t["passed"] for t in after_reset.tasks[2:]), after_reset
    first_task = next(t for t in after_reset.tasks if not t["passed"])
    first_failed = next(e for e in first_task["exercises"] if not e["passed"])
    assert after_reset.stuck == f"{first_failed['label']}: {first_failed['message']}"
    output = board.bring_to(room, half.name, 3)
    assert "All 4 notebook(s) passed" in output, output
    rows = {row.name: row for row in board.board(room)}
    stuck = rows[half.name]
    assert [t["passed"] for t in stuck.tasks] == [True, True, True, False], stuck
    task4 = stuck.tasks[3]
    first_failed = next(e for e in task4["exercises"] if not e["passed"])
    assert stuck.stuck == f"{first_failed['label']}: {first_failed['message']}"
    assert stuck.stuck.startswith("Exercise 4.")
    text = board.as_text(list(rows.values()))
    assert f"{half.name:<16} ✅ ✅ ✅ ❌" in text and stuck.stuck in text
    assert [t["passed"] for t in rows[other.name].tasks] == [True] * 4  # untouched


def test_learners_cannot_use_each_others_api(classroom: Any, lab_done: Any) -> None:
    _, sessions = classroom
    ann, bob = list(sessions.values())[:2]
    own = ann.client("ecr", ann).describe_repositories()["repositories"]
    repository = own[0]["repositoryName"]
    attempts = {
        "ecr": [
            lambda c: c.describe_repositories(),
            lambda c: c.list_images(repositoryName=repository),
            lambda c: c.batch_get_image(
                repositoryName=repository, imageIds=[{"imageTag": "latest"}]
            ),
            lambda c: c.put_image(repositoryName=repository, imageManifest="{}"),
            lambda c: c.batch_delete_image(
                repositoryName=repository, imageIds=[{"imageTag": "latest"}]
            ),
            lambda c: c.delete_repository(repositoryName=repository, force=True),
            lambda c: c.get_authorization_token(),
        ],
        "ecs": [
            lambda c: c.list_task_definitions(),
            lambda c: c.list_clusters(),
            lambda c: c.deregister_task_definition(taskDefinition="x:1"),
            lambda c: c.delete_service(cluster="default", service="x", force=True),
            lambda c: c.list_tasks(),
        ],
    }
    for service, calls in attempts.items():
        client = ann.client(service, bob)
        for call in calls:
            with pytest.raises(ClientError) as refused:
                call(client)
            assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
    with pytest.raises(ClientError) as refused:
        ann.client("elbv2", bob).describe_load_balancers()
    assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
    # Bob's lab is intact.
    assert bob.client("ecr", bob).describe_repositories()["repositories"]


def test_learners_cannot_use_each_others_registry(classroom: Any, lab_done: Any) -> None:
    state, sessions = classroom
    room = Classroom.load(state)
    ann, bob = list(sessions.values())[:2]
    auth = ann.client("ecr", ann).get_authorization_token()["authorizationData"][0]
    import base64

    user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    bob_api = f"http://127.0.0.1:{room.learner(bob.name).api_port}"
    ann_api = f"http://127.0.0.1:{room.learner(ann.name).api_port}"
    scope = "scope=repository:myrepo:pull,push"
    # Ann's ECR password at Bob's token service: refused.
    request = urllib.request.Request(
        f"{bob_api}/_labkit/registry/token?service=registry&{scope}",
        headers={"Authorization": f"Basic {basic}"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        _loopback.open(request, timeout=10)
    assert refused.value.code == 401
    # A registry token Ann's sandbox issued, shown to Bob's registry: refused.
    request = urllib.request.Request(
        f"{ann_api}/_labkit/registry/token?service=registry&{scope}",
        headers={"Authorization": f"Basic {basic}"},
    )
    with _loopback.open(request, timeout=10) as reply:
        token = json.loads(reply.read())["token"]
    bob_registry = f"http://127.0.0.1:{room.learner(bob.name).registry_port}"
    for path in ("/v2/myrepo/tags/list", "/v2/myrepo/manifests/latest"):
        request = urllib.request.Request(
            bob_registry + path, headers={"Authorization": f"Bearer {token}"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            _loopback.open(request, timeout=10)
        assert refused.value.code == 401
    # The same token works at Ann's own registry: the refusal above is about whose it is.
    ann_registry = f"http://127.0.0.1:{room.learner(ann.name).registry_port}"
    request = urllib.request.Request(
        ann_registry + "/v2/myrepo/tags/list", headers={"Authorization": f"Bearer {token}"}
    )
    with _loopback.open(request, timeout=10) as reply:
        assert json.loads(reply.read())["tags"]


def test_learners_cannot_touch_each_others_containers_or_files(
    classroom: Any, lab_done: Any
) -> None:
    _, sessions = classroom
    ann, bob = list(sessions.values())[:2]
    bob_containers = bob.as_unix_user(["docker", "ps", "-q", "--no-trunc"]).stdout.split()
    assert bob_containers, "Bob's service should be running"
    ann_containers = ann.as_unix_user(["docker", "ps", "-aq", "--no-trunc"]).stdout.split()
    assert not set(bob_containers) & set(ann_containers)
    # Ann's Docker does not know Bob's containers: she cannot stop or exec into them.
    for argv in (
        ["docker", "stop", bob_containers[0]],
        ["docker", "exec", bob_containers[0], "ls"],
    ):
        done = ann.as_unix_user(argv)
        assert done.returncode != 0 and "No such container" in done.stderr, done.stderr
    # Nor can she use Bob's Docker Engine.
    bob_socket = host.docker_socket(bob.entry)
    done = ann.as_unix_user(["docker", "-H", f"unix://{bob_socket}", "ps"])
    assert done.returncode != 0 and "permission denied" in done.stderr.lower()
    # Nor read his files.
    for path in (bob.entry.pw_dir, f"{bob.entry.pw_dir}/.labkit/sandbox/credentials.json"):
        done = ann.as_unix_user(["cat", path] if path.endswith(".json") else ["ls", path])
        assert done.returncode != 0 and "Permission denied" in done.stderr
    assert bob.as_unix_user(["docker", "ps", "-q", "--no-trunc"]).stdout.split() == bob_containers


def test_board_page_shows_every_learner(classroom: Any, lab_done: Any) -> None:
    """The live board `up` started: one row per learner, read from their sandboxes; it
    answers only its token (learners share the host's loopback)."""
    state, sessions = classroom
    room = Classroom.load(state)
    base = f"http://{room.board_ip}:{room.board_port}"
    with pytest.raises(urllib.error.HTTPError) as refused:
        _loopback.open(f"{base}/", timeout=10)
    assert refused.value.code == 403
    with pytest.raises(urllib.error.HTTPError) as refused:
        _loopback.open(f"{base}/?token=not-the-token", timeout=10)
    assert refused.value.code == 403
    with _loopback.open(room.board_url, timeout=180) as reply:
        page = reply.read().decode()
    assert "http-equiv='refresh'" in page
    real = {row.name: row for row in board.board(room)}
    for name in sessions:
        assert f"<tr><td>{name}</td>" in page, page
    # The same rows as the board reads directly, as JSON.
    request = urllib.request.Request(
        f"{base}/board.json", headers={"Authorization": f"token {room.board_token}"}
    )
    with _loopback.open(request, timeout=180) as reply:
        rows = {row["name"]: row for row in json.loads(reply.read())["rows"]}
    assert set(rows) == set(sessions)
    for name, row in rows.items():
        assert row["sandbox"] == real[name].sandbox == "healthy"
        assert [t["passed"] for t in row["tasks"]] == [t["passed"] for t in real[name].tasks]
        assert row["stuck"] == real[name].stuck


def test_down_leaves_nothing_behind(classroom: Any, lab_done: Any) -> None:
    state, sessions = classroom
    room = Classroom.load(state)
    ports = [room.port, room.board_port]
    for name in sessions:
        learner = room.learner(name)
        ports += [learner.api_port, learner.registry_port, learner.lb_port]
    hub.down(room.state_dir, say=lambda *_: None)
    uids = {session.entry.pw_uid for session in sessions.values()}
    # Deleted accounts' uids are reused: a process older than this classroom (another
    # run's leftover on a shared machine) is not one of its learners'.
    created = (room.state_dir.parent / "roster.txt").stat().st_mtime
    left = [
        p.info
        for p in psutil.process_iter(["pid", "uids", "cmdline", "create_time"])
        if p.info["uids"] and p.info["uids"].real in uids and p.info["create_time"] >= created
    ]
    assert left == []
    state = str(room.state_dir)
    assert not [
        p.info
        for p in psutil.process_iter(["pid", "cmdline"])
        if state in " ".join(p.info["cmdline"] or [])
    ]
    for port in ports:
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"
