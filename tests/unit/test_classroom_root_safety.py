"""Root's looks into a learner's folders go through descriptors: a symlink, a hard link to
someone else's file or a FIFO put there by the learner steers nothing. The state folder is
root's only; the workshop password never comes from the command line.

Real files, links and sockets in a temporary folder; "the learner" is the user nobody.
"""

from __future__ import annotations

import io
import os
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from labkit.classroom import hub, learner_paths
from labkit.errors import InputError

NOBODY = 65534


@pytest.fixture
def learner_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root (files of another user are made)")
    folder = tmp_path / "learner"
    folder.mkdir()
    os.chown(folder, NOBODY, NOBODY)
    return folder


def _canary(tmp_path: Path) -> Path:
    canary = tmp_path / "canary.txt"
    canary.write_text("root's\n")
    canary.chmod(0o600)
    return canary


def test_a_symlink_in_place_of_a_folder_is_refused_not_followed(
    tmp_path: Path, learner_folder: Path
) -> None:
    target = tmp_path / "roots-folder"
    target.mkdir(mode=0o755)
    (learner_folder / "run").symlink_to(target)
    with pytest.raises(learner_paths.NotTheLearners, match="not a folder"):
        learner_paths.private_folder(learner_folder, "run", NOBODY, NOBODY)
    info = target.stat()
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o755)


def test_a_missing_folder_is_made_the_learners_and_private(learner_folder: Path) -> None:
    learner_paths.private_folder(learner_folder, "run", NOBODY, NOBODY)
    info = (learner_folder / "run").lstat()
    assert stat.S_ISDIR(info.st_mode) and info.st_uid == NOBODY
    assert stat.S_IMODE(info.st_mode) == 0o700


def test_reading_refuses_symlinks_hard_links_and_fifos(
    tmp_path: Path, learner_folder: Path
) -> None:
    canary = _canary(tmp_path)
    (learner_folder / "state").mkdir()
    (learner_folder / "state" / "child_pid").symlink_to(canary)
    with pytest.raises(OSError):  # ELOOP: the symlink is not followed
        learner_paths.read_small_file(learner_folder, "state", "child_pid", uid=NOBODY)
    (learner_folder / "state" / "child_pid").unlink()
    os.link(canary, learner_folder / "state" / "child_pid")  # root's file, by another name
    with pytest.raises(learner_paths.NotTheLearners):
        learner_paths.read_small_file(learner_folder, "state", "child_pid", uid=NOBODY)
    (learner_folder / "state" / "child_pid").unlink()
    os.mkfifo(learner_folder / "state" / "child_pid")
    os.chown(learner_folder / "state" / "child_pid", NOBODY, NOBODY)
    with pytest.raises(learner_paths.NotTheLearners):  # returns at once, does not block
        learner_paths.read_small_file(learner_folder, "state", "child_pid", uid=NOBODY)
    (learner_folder / "state" / "child_pid").unlink()
    (learner_folder / "state" / "child_pid").write_text("4242\n")
    os.chown(learner_folder / "state" / "child_pid", NOBODY, NOBODY)
    got = learner_paths.read_small_file(learner_folder, "state", "child_pid", uid=NOBODY)
    assert got == "4242\n"
    # A symlinked folder on the way is not followed either.
    (learner_folder / "state2").symlink_to(learner_folder / "state")
    with pytest.raises(OSError):
        learner_paths.read_small_file(learner_folder, "state2", "child_pid", uid=NOBODY)


def _listening(path: Path, owner: int) -> tuple[socket.socket, list[int]]:
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    os.chown(path, owner, owner)
    server.listen()
    accepted: list[int] = []

    def accept() -> None:
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            connection.sendall(b"HTTP/1.0 200 OK\r\n\r\n")
            connection.close()

    threading.Thread(target=accept, daemon=True).start()
    return server, accepted


def test_the_socket_connected_to_is_the_learners_own(tmp_path: Path, learner_folder: Path) -> None:
    roots, roots_accepted = _listening(tmp_path / "roots.sock", 0)
    theirs, their_accepted = _listening(learner_folder / "docker.sock", NOBODY)
    try:
        with learner_paths.connect_socket(
            learner_folder, "docker.sock", uid=NOBODY, timeout=5
        ) as sock:
            assert sock.recv(64).startswith(b"HTTP/1.0 200")
        assert their_accepted == [1]
        (learner_folder / "docker.sock").unlink()
        (learner_folder / "docker.sock").symlink_to(tmp_path / "roots.sock")
        with pytest.raises(learner_paths.NotTheLearners):
            learner_paths.connect_socket(learner_folder, "docker.sock", uid=NOBODY, timeout=5)
        assert roots_accepted == []
    finally:
        roots.close()
        theirs.close()


def test_removing_a_runtime_folder_leaves_what_its_symlinks_name(
    tmp_path: Path, learner_folder: Path
) -> None:
    canary = _canary(tmp_path)
    (learner_folder / "1234").mkdir()
    (learner_folder / "1234" / "link").symlink_to(tmp_path)
    (learner_folder / "1234" / "file").symlink_to(canary)
    assert learner_paths.remove_folder(learner_folder, "1234")
    assert not (learner_folder / "1234").exists()
    assert canary.read_text() == "root's\n"
    (learner_folder / "5678").symlink_to(tmp_path)
    assert not learner_paths.remove_folder(learner_folder, "5678")
    assert canary.exists()


def test_the_state_folder_is_tightened_and_must_be_roots(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    hub.root_only_folder(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    os.chown(state, NOBODY, NOBODY)
    with pytest.raises(InputError, match="belongs to user 65534"):
        hub.root_only_folder(state)
    link = tmp_path / "link"
    link.symlink_to(state)
    with pytest.raises(InputError, match="not a folder"):
        hub.root_only_folder(link)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(InputError, match="not a folder"):
        hub.root_only_folder(dangling)
    assert not (tmp_path / "nowhere").exists()
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)  # anyone may rename what is in it
    with pytest.raises(InputError, match="others than root can change"):
        hub.root_only_folder(shared / "state")


def test_the_workshop_password_never_comes_from_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(InputError, match="visible to every user"):
        hub.workshop_password("on-the-command-line", None)
    assert hub.workshop_password(None, None) is None  # one generated password per learner
    secret_file = tmp_path / "password"
    secret_file.write_text("from a file\nsecond line ignored\n")
    assert hub.workshop_password(None, str(secret_file)) == "from a file"
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    assert hub.workshop_password(None, "-") == "from stdin"
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    with pytest.raises(InputError, match="empty"):
        hub.workshop_password(None, "-")
    with pytest.raises(InputError, match="not a terminal"):
        hub.workshop_password(True, None)
    with pytest.raises(InputError, match="cannot be read"):
        hub.workshop_password(None, str(tmp_path / "missing"))


def test_classroom_up_refuses_a_password_on_its_command_line(tmp_path: Path) -> None:
    roster = tmp_path / "roster.txt"
    roster.write_text("ada\n")
    state = tmp_path / "state"
    argv = ["classroom", "--state", str(state), "up", "--roster", str(roster)]
    done = subprocess.run(
        [sys.executable, "-m", "labkit.cli", *argv, "--password", "in-ps-for-all"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "visible to every user" in done.stderr + done.stdout
    assert "--password-file" in done.stderr + done.stdout
    assert not state.exists()  # refused before anything was made
