"""Per-learner cgroups (labkit.classroom.limits): where the kit's folders go on each cgroup
layout, and, as root on a host with cgroups, real limits on real processes."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.classroom import limits
from labkit.errors import BackendError, InputError

HYBRID = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
33 30 0:29 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
34 30 0:30 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
35 30 0:31 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
"""
HYBRID_OWN = """\
9:name=systemd:/user.slice
4:pids:/user.slice/user-0.slice
3:memory:/box/one
2:cpu,cpuacct:/
0::/user.slice
"""


def test_v1_nests_the_kits_folder_where_the_instructor_runs() -> None:
    mounts = limits.read_mounts(HYBRID)
    found, problems = limits.locate(mounts, HYBRID_OWN, "")
    assert problems == []
    by_key = {h.key: h for h in found}
    assert by_key["cpu,cpuacct"].parent == "/sys/fs/cgroup/cpu,cpuacct/labkit-classroom"
    assert by_key["cpu,cpuacct"].cgroup_path == "/labkit-classroom"
    assert by_key["memory"].parent == "/sys/fs/cgroup/memory/box/one/labkit-classroom"
    assert by_key["pids"].cgroup_path == "/user.slice/user-0.slice/labkit-classroom"
    assert {h.version for h in found} == {1}


def test_v2_puts_the_kits_folder_at_the_top() -> None:
    mountinfo = "40 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    own = "0::/user.slice/user-0.slice/session-3.scope\n"
    found, problems = limits.locate(
        limits.read_mounts(mountinfo), own, "cpuset cpu io memory pids\n"
    )
    assert problems == []
    assert [(h.version, h.parent, h.key) for h in found] == [
        (2, "/sys/fs/cgroup/labkit-classroom", "")
    ]
    assert found[0].controllers == ["cpu", "memory", "pids"]


def test_missing_controllers_are_named() -> None:
    mountinfo = "40 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    found, problems = limits.locate(limits.read_mounts(mountinfo), "0::/\n", "cpu io\n")
    assert found[0].controllers == ["cpu"]
    assert len(problems) == 2 and "memory" in problems[0] and "pids" in problems[1]
    found, problems = limits.locate([], "", "")
    assert found == [] and len(problems) == 3
    plan = limits.Plan(problems=problems)
    assert plan.cell("lk-ada") is None and "not available" in plan.describe()


def test_sizes_and_settings() -> None:
    assert limits.parse_size("1.5G") == 1536 * 2**20
    assert limits.parse_size("1536M") == limits.parse_size("1536MiB") == 1536 * 2**20
    assert limits.parse_size("800000000") == 800000000
    with pytest.raises(InputError, match="not a memory size"):
        limits.parse_size("lots")
    with pytest.raises(InputError, match="too small"):
        limits.Settings(memory_max=2**20)
    with pytest.raises(InputError, match="too small"):
        limits.Settings(pids_max=10)
    with pytest.raises(InputError, match="out of range"):
        limits.Settings(cpu_weight=0)
    plan = limits.Plan(limits.Settings(pids_max=700))
    assert limits.Plan.from_dict(plan.as_dict()) == plan
    assert limits.Plan.from_dict({}).hierarchies == []


# -- real cgroups (root) ----------------------------------------------------------------


@pytest.fixture
def plan() -> limits.Plan:
    if os.geteuid() != 0:
        pytest.skip("making cgroups needs root")
    made = limits.prepare(
        limits.Settings(memory_max=64 * 2**20, pids_max=64),
        learners=3,
        kit="labkit-test-" + secrets.token_hex(3),
    )
    if made.limited != ["cpu", "memory", "pids"]:
        pytest.skip("this host cannot limit: " + "; ".join(made.problems))
    yield made
    assert made.remove_parents() == []
    assert not any(Path(h.parent).exists() for h in made.hierarchies)


def _cell(plan: limits.Plan) -> limits.Cell:
    cell = plan.cell("lk-test-" + secrets.token_hex(2))
    assert cell is not None
    cell.ensure()
    return cell


def test_a_learners_process_and_its_children_run_in_their_cgroup(plan: limits.Plan) -> None:
    cell = _cell(plan)
    try:
        # As an unprivileged user, as a learner's processes run: the parent admits it.
        done = cell.run(
            ["sh", "-c", "cat /proc/self/cgroup"],
            user="nobody",
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        for hierarchy in plan.hierarchies:
            assert f"{hierarchy.key}:{hierarchy.cgroup_path}/{cell.name}\n" in done.stdout
        # Equal CPU weights; the room weighs as much as its 3 learners.
        cpu = next(h for h in plan.hierarchies if "cpu" in h.controllers)
        name, one = ("cpu.weight", "100") if cpu.version == 2 else ("cpu.shares", "1024")
        assert Path(cpu.parent, cell.name, name).read_text().strip() == one
        assert Path(cpu.parent, name).read_text().strip() == str(3 * int(one))
    finally:
        assert cell.remove() == []


def test_a_memory_hog_is_killed_at_the_maximum(plan: limits.Plan) -> None:
    cell = _cell(plan)
    try:
        hog = "x = bytearray(256 * 2**20); print('survived')"
        done = cell.run([sys.executable, "-c", hog], capture_output=True, text=True, timeout=60)
        assert done.returncode == -9 and "survived" not in done.stdout
        use = cell.usage()
        assert use["oom_kills"] >= 1
        assert use["memory_peak"] <= 64 * 2**20
    finally:
        assert cell.remove() == []


def test_forks_stop_at_the_process_maximum(plan: limits.Plan) -> None:
    cell = _cell(plan)
    bomb = (
        "import os, time\n"
        "children = 0\n"
        "for _ in range(200):\n"  # bounded: 200 at most, whatever the limit
        "    try:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(5); os._exit(0)\n"
        "        children += 1\n"
        "    except OSError:\n"
        "        break\n"
        "print(children)\n"
    )
    try:
        done = cell.run([sys.executable, "-c", bomb], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert int(done.stdout) < 64
        assert cell.usage()["pids_refused"] >= 1
    finally:
        assert cell.remove() == []  # the sleeping children are killed with it
    assert not cell.exists()


def test_remove_stops_what_is_left_in_the_cgroup(plan: limits.Plan) -> None:
    cell = _cell(plan)
    process = cell.popen(["sleep", "600"])
    assert process.pid in cell.pids()
    assert cell.remove() == []
    assert process.wait(10) == -9
    assert not cell.exists()


def test_a_process_that_cannot_join_never_runs(plan: limits.Plan, tmp_path: Path) -> None:
    cell = plan.cell("lk-test-never-made")
    assert cell is not None and not cell.exists()
    marker = tmp_path / "ran"
    with pytest.raises(BackendError, match="could not join"):
        cell.popen(["touch", str(marker)])
    assert not marker.exists()
    # The wait loop gives up by itself if no parent ever admits it.
    command = cell.command(["touch", str(marker)])
    loop = command[2].replace("3000", "5")
    done = subprocess.run([*command[:2], loop, *command[3:]], capture_output=True, text=True)
    assert done.returncode == 125 and "not moved into the cgroup" in done.stderr
    assert not marker.exists()


def test_up_says_what_runs_without_limits() -> None:
    from labkit.classroom import hub

    said: list[str] = []
    found, problems = limits.locate([], "", "")
    hub._say_limits(limits.Plan(hierarchies=found, problems=problems), said.append)
    text = "\n".join(said)
    assert "CANNOT BE LIMITED" in text and "the pids controller is not available" in text
    assert "Without cpu, memory, pids limits" in text and "Fix:" in text
    said.clear()
    mountinfo = "40 30 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"
    found, problems = limits.locate(limits.read_mounts(mountinfo), "0::/\n", "cpu memory\n")
    hub._say_limits(limits.Plan(hierarchies=found, problems=problems), said.append)
    text = "\n".join(said)
    assert "ONLY PARTLY LIMITED" in text and "Without pids limits" in text
    said.clear()
    found, _ = limits.locate(limits.read_mounts(mountinfo), "0::/\n", "cpu memory pids\n")
    hub._say_limits(limits.Plan(hierarchies=found), said.append)
    assert said == [
        "Per-learner limits: memory 1.5 GiB, 1024 processes and threads, CPU weight 100 "
        "(the same for every learner); cgroup v2: cpu, memory, pids."
    ]
