"""Per-learner limits: each learner's processes share one cgroup with a memory maximum,
a process maximum and an equal CPU weight, so one learner's fork bomb or memory hog
stops at their own limits and the rest of the room (and the hub) keeps going.

The kit makes one folder of its own in each cgroup hierarchy it uses
(``labkit-classroom``) and one cgroup per learner in it (``lk-<name>``). Only root can
write there, so learners can neither leave their cgroup nor move anything into it.

A learner's process joins before it runs anything: it is started through a tiny shell
loop (:meth:`Cell.command`) that waits until ``/proc/self/cgroup`` shows the learner's
cgroup, then execs the real program; the parent (root) writes the child's pid into the
cgroup right after starting it (:meth:`Cell.admit`). Nothing the program forks can
escape, and the learner's process never holds anything of root's.

cgroup v1 (each controller its own hierarchy) nests the kit's folder in the cgroup that
``classroom up`` runs in, so the learners stay counted within the instructor's own
limits (a container's, a service's). cgroup v2 forbids processes in a cgroup whose
children have controllers, so there the kit's folder sits at the top of the hierarchy.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from labkit.errors import BackendError, InputError

#: The kit's own folder in each hierarchy; nothing else is created or removed.
KIT_CGROUP = "labkit-classroom"
CONTROLLERS = ("cpu", "memory", "pids")
DEFAULT_MEMORY_MAX = 1536 * 2**20  # 1.5 GiB: about 3x a learner's measured peak (545 MiB)
DEFAULT_PIDS_MAX = 1024  # processes and threads; a whole lab peaks at 137
DEFAULT_CPU_WEIGHT = 100  # cgroup v2's default: every learner the same share
CELL_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

#: Runs as the learner: waits until the parent moved it into the cgroup ``$1`` (a line
#: of /proc/self/cgroup ends with ":$1"), then becomes the real program. Shell builtins
#: only while waiting, so nothing is forked outside the cgroup but a short ``sleep``.
ADMISSION_WAIT = """\
want=$1; shift; tries=0
while :; do
  admitted=
  while IFS= read -r line; do
    case $line in *":$want") admitted=1 ;; esac
  done < /proc/self/cgroup
  [ -n "$admitted" ] && exec "$@"
  tries=$((tries + 1))
  if [ "$tries" -gt 3000 ]; then
    echo "labkit: not moved into the cgroup $want within 30 s; not started" >&2
    exit 125
  fi
  sleep 0.01
done
"""


@dataclass
class Settings:
    """What each learner may use; the same for every learner of a room."""

    memory_max: int = DEFAULT_MEMORY_MAX  # bytes
    pids_max: int = DEFAULT_PIDS_MAX
    cpu_weight: int = DEFAULT_CPU_WEIGHT  # 1-10000, cgroup v2's scale

    def __post_init__(self) -> None:
        if self.memory_max < 64 * 2**20:
            raise InputError(
                f"A memory maximum of {self.memory_max} bytes is too small for a learner.",
                why="A learner's whole lab (server, kernels, sandbox, Docker Engine) peaks at "
                "about 550 MiB.",
                fix="Give 1G or more (the default is 1.5G; 64M is the least accepted).",
            )
        if self.pids_max < 64:
            raise InputError(
                f"A process maximum of {self.pids_max} is too small for a learner.",
                why="A learner's whole lab peaks at about 140 processes and threads.",
                fix="Give 512 or more (the default is 1024; 64 is the least accepted).",
            )
        if not 1 <= self.cpu_weight <= 10000:
            raise InputError(
                f"A CPU weight of {self.cpu_weight} is out of range.", fix="Give 1 to 10000."
            )

    def describe(self) -> str:
        return (
            f"memory {format_size(self.memory_max)}, {self.pids_max} processes and threads, "
            f"CPU weight {self.cpu_weight} (the same for every learner)"
        )


def parse_size(text: str) -> int:
    """``1.5G``, ``1536M``, ``800000000``: bytes (K, M, G are powers of 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]?)i?B?\s*", text, re.IGNORECASE)
    if match is None:
        raise InputError(
            f"{text!r} is not a memory size.", fix="Write it like 1.5G, 1536M or 1610612736."
        )
    number, unit = float(match[1]), match[2].upper()
    return int(number * 1024 ** " KMG".index(unit or " "))


def format_size(size: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20)):
        if size >= factor:
            return f"{size / factor:.3g} {unit}"
    return f"{size} B"


@dataclass
class Hierarchy:
    """One cgroup hierarchy the kit uses, and the kit's folder in it."""

    version: int  # 1 or 2
    controllers: list[str]  # the ones of CONTROLLERS it carries
    key: str  # its controllers field in /proc/<pid>/cgroup ("memory", "cpu,cpuacct", "")
    parent: str  # the kit's folder, on the cgroup file system
    cgroup_path: str  # the same folder as /proc/<pid>/cgroup names it


@dataclass
class Plan:
    """Where the room's cgroups are, and their limits (kept in the room's state)."""

    settings: Settings = field(default_factory=Settings)
    hierarchies: list[Hierarchy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def limited(self) -> list[str]:
        return sorted(c for h in self.hierarchies for c in h.controllers)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if not data:
            return cls(problems=["the classroom was set up without per-learner limits"])
        return cls(
            settings=Settings(**data["settings"]),
            hierarchies=[Hierarchy(**h) for h in data["hierarchies"]],
            problems=list(data["problems"]),
        )

    def cell(self, unix_user: str) -> Cell | None:
        """The learner's cgroup(s); None when nothing can be limited here."""
        if not self.hierarchies:
            return None
        if not CELL_NAME.match(unix_user):
            raise InputError(f"{unix_user!r} cannot name a cgroup.")
        return Cell(self, unix_user)

    def describe(self) -> str:
        if not self.hierarchies:
            return "none (" + "; ".join(self.problems) + ")"
        versions = sorted({h.version for h in self.hierarchies})
        where = " and ".join(f"cgroup v{v}" for v in versions)
        return f"{self.settings.describe()}; {where}: {', '.join(self.limited)}"

    def remove_parents(self) -> list[str]:
        """Remove the kit's folders once empty; problems (e.g. still in use) as text."""
        problems = []
        for hierarchy in self.hierarchies:
            try:
                os.rmdir(hierarchy.parent)
            except FileNotFoundError:
                pass
            except OSError as error:
                if error.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                    problems.append(f"{hierarchy.parent}: {error.strerror}")
        return problems


# -- finding the hierarchies ------------------------------------------------------------


@dataclass
class Mount:
    version: int
    point: str
    root: str  # the part of the hierarchy this mount shows
    options: set[str]


def read_mounts(mountinfo: str) -> list[Mount]:
    """The cgroup file systems in ``/proc/self/mountinfo``'s text."""
    mounts = []
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, rest = fields.split(), tail.split()
        if len(parts) < 5 or len(rest) < 3 or rest[0] not in ("cgroup", "cgroup2"):
            continue
        unescape = lambda s: re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), s)  # noqa: E731
        mounts.append(
            Mount(
                version=2 if rest[0] == "cgroup2" else 1,
                point=unescape(parts[4]),
                root=unescape(parts[3]),
                options=set(rest[2].split(",")),
            )
        )
    return mounts


def locate(
    mounts: list[Mount], own_cgroups: str, v2_controllers: str, kit: str = KIT_CGROUP
) -> tuple[list[Hierarchy], list[str]]:
    """Where the kit's folder goes in each hierarchy carrying one of CONTROLLERS, from
    the mounts, this process's ``/proc/self/cgroup`` and cgroup v2's root
    ``cgroup.controllers``; and which controllers are missing, as problems."""
    own: dict[str, str] = {}
    for line in own_cgroups.splitlines():
        _, key, path = line.split(":", 2)
        own[key] = path
    hierarchies: list[Hierarchy] = []
    found: set[str] = set()
    for mount in mounts:
        if mount.version != 1:
            continue
        carried = [c for c in CONTROLLERS if c in mount.options and c not in found]
        key = next((k for k in own if k and set(k.split(",")) <= mount.options), None)
        root = mount.root.rstrip("/")
        if not carried or key is None or not (own[key] + "/").startswith(root + "/"):
            continue  # this mount does not show the cgroup this process is in
        inside = own[key][len(root) :].lstrip("/")
        hierarchies.append(
            Hierarchy(
                version=1,
                controllers=carried,
                key=key,
                parent=os.path.normpath(os.path.join(mount.point, inside, kit)),
                cgroup_path=os.path.normpath(os.path.join(own[key], kit)),
            )
        )
        found.update(carried)
    unified = next((m for m in mounts if m.version == 2 and "" in own), None)
    on_v2 = [c for c in CONTROLLERS if c not in found and c in v2_controllers.split()]
    if unified is not None and on_v2:
        hierarchies.append(
            Hierarchy(
                version=2,
                controllers=on_v2,
                key="",
                parent=os.path.join(unified.point, kit),
                cgroup_path=os.path.normpath(os.path.join(unified.root, kit)),
            )
        )
        found.update(on_v2)
    problems = [
        f"the {c} controller is not available (not in any cgroup hierarchy mounted here)"
        for c in CONTROLLERS
        if c not in found
    ]
    return hierarchies, problems


def prepare(settings: Settings, learners: int = 1, kit: str = KIT_CGROUP) -> Plan:
    """Find the hierarchies and make the kit's folders (root), weighing as much CPU as
    ``learners`` of the host's other top-level groups or processes. Never raises for
    what the host lacks: the plan's problems say what is not limited and why."""
    try:
        mounts = read_mounts(Path("/proc/self/mountinfo").read_text())
        own = Path("/proc/self/cgroup").read_text()
    except OSError as error:
        return Plan(settings, [], [f"cannot read this process's cgroups: {error}"])
    unified = next((m for m in mounts if m.version == 2), None)
    v2_controllers = ""
    if unified is not None:
        try:
            v2_controllers = Path(unified.point, "cgroup.controllers").read_text()
        except OSError:
            pass
    hierarchies, problems = locate(mounts, own, v2_controllers, kit)
    usable = []
    for hierarchy in hierarchies:
        try:
            if hierarchy.version == 2:
                _enable(Path(hierarchy.parent).parent, hierarchy.controllers)
            os.makedirs(hierarchy.parent, mode=0o755, exist_ok=True)
            if hierarchy.version == 2:
                _enable(Path(hierarchy.parent), hierarchy.controllers)
            if "cpu" in hierarchy.controllers:
                # Each learner weighs as much as any other process (v1) or top-level group
                # (v2) of the host: the room is not squeezed into one process's share by
                # whatever else runs, and the hub never gets less than one learner.
                weight = min(10000, settings.cpu_weight * max(1, learners))
                _write(Path(hierarchy.parent, _cpu_file(hierarchy)), _cpu_value(hierarchy, weight))
        except OSError as error:
            problems.append(
                f"cannot make the kit's cgroup {hierarchy.parent} with "
                f"{', '.join(hierarchy.controllers)}: {error.strerror or error}"
                + (
                    " (cgroup v2 allows no processes in a cgroup whose children have "
                    "controllers: run the classroom from the top cgroup)"
                    if error.errno == errno.EBUSY
                    else ""
                )
            )
            continue
        usable.append(hierarchy)
    return Plan(settings, usable, problems)


def _cpu_file(hierarchy: Hierarchy) -> str:
    return "cpu.weight" if hierarchy.version == 2 else "cpu.shares"


def _cpu_value(hierarchy: Hierarchy, weight: int) -> str:
    """A cgroup v2 weight (1-10000, 100 by default) in the hierarchy's own scale."""
    if hierarchy.version == 2:
        return str(weight)
    return str(max(2, weight * 1024 // 100))  # v1's cpu.shares: 1024 by default


def _enable(cgroup: Path, controllers: list[str]) -> None:
    """cgroup v2: let ``cgroup``'s children use ``controllers``."""
    enabled = (cgroup / "cgroup.subtree_control").read_text().split()
    wanted = [c for c in controllers if c not in enabled]
    if wanted:
        _write(cgroup / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))


def _write(path: Path, value: str) -> None:
    """Write a cgroup file the kit made (no symlinks: cgroup file systems have none, and
    one planted elsewhere is refused)."""
    fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


# -- one learner's cgroup ---------------------------------------------------------------


class Cell:
    """One learner's cgroup: a folder named after their account in each hierarchy."""

    def __init__(self, plan: Plan, unix_user: str) -> None:
        self.plan, self.name = plan, unix_user

    def _dirs(self) -> list[tuple[Hierarchy, Path]]:
        return [(h, Path(h.parent) / self.name) for h in self.plan.hierarchies]

    def exists(self) -> bool:
        return all(folder.is_dir() for _, folder in self._dirs())

    def ensure(self) -> None:
        """Make the learner's cgroup(s) and write the limits (idempotent)."""
        settings = self.plan.settings
        try:
            for hierarchy, folder in self._dirs():
                folder.mkdir(mode=0o755, exist_ok=True)
                if folder.stat().st_uid != 0:
                    raise PermissionError(errno.EPERM, "not root's", str(folder))
                v2 = hierarchy.version == 2
                values: dict[str, str] = {}
                if "memory" in hierarchy.controllers:
                    values["memory.max" if v2 else "memory.limit_in_bytes"] = str(
                        settings.memory_max
                    )
                    if v2 and (folder / "memory.swap.max").exists():
                        values["memory.swap.max"] = "0"  # a hog must not swap the host
                if "pids" in hierarchy.controllers:
                    values["pids.max"] = str(settings.pids_max)
                if "cpu" in hierarchy.controllers:
                    values[_cpu_file(hierarchy)] = _cpu_value(hierarchy, settings.cpu_weight)
                for name, value in values.items():
                    _write(folder / name, value)
        except OSError as error:
            raise BackendError(
                f"{self.name}'s cgroup could not be set up.",
                why=f"{error.filename or ''}: {error.strerror or error}",
                fix="Run `labkit classroom up` again; it says what this host can limit.",
            ) from error

    def command(self, argv: list[str]) -> list[str]:
        """``argv``, started so that it runs only once inside the learner's cgroup."""
        hierarchy = self.plan.hierarchies[-1]  # admit() writes this one last
        want = f"{hierarchy.key}:{hierarchy.cgroup_path}/{self.name}"
        return ["/bin/sh", "-c", ADMISSION_WAIT, "labkit-cell", want, *argv]

    def admit(self, pid: int) -> None:
        """Move ``pid`` (started with :meth:`command`) into the learner's cgroup."""
        for _, folder in self._dirs():
            _write(folder / "cgroup.procs", str(pid))

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """``subprocess.Popen`` inside the learner's cgroup."""
        process = subprocess.Popen(self.command(argv), **kwargs)
        try:
            self.admit(process.pid)
        except OSError as error:
            process.kill()  # still in the wait loop: it has run nothing of its own
            process.wait()
            raise BackendError(
                f"A process of {self.name} could not join their cgroup; it was not started.",
                why=f"{error.filename or ''}: {error.strerror or error}",
                fix="Run `labkit classroom up` again; it says what this host can limit.",
            ) from error
        return process

    def run(
        self,
        argv: list[str],
        *,
        timeout: float | None = None,
        capture_output: bool = False,
        check: bool = False,
        input: str | bytes | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess:
        """``subprocess.run`` inside the learner's cgroup."""
        if capture_output:
            kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if input is not None:
            kwargs["stdin"] = subprocess.PIPE
        with self.popen(argv, **kwargs) as process:
            try:
                stdout, stderr = process.communicate(input, timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise
        done = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
        if check:
            done.check_returncode()
        return done

    def usage(self) -> dict[str, int]:
        """What the learner uses now, and how often a limit stopped them."""
        found: dict[str, int] = {}
        for hierarchy, folder in self._dirs():
            v2 = hierarchy.version == 2
            if "memory" in hierarchy.controllers:
                current = _read(folder / ("memory.current" if v2 else "memory.usage_in_bytes"))
                peak = _read(folder / ("memory.peak" if v2 else "memory.max_usage_in_bytes"))
                events = _read(folder / ("memory.events" if v2 else "memory.oom_control"))
                found["memory"] = int(current or 0)
                found["memory_peak"] = int(peak or 0)
                found["oom_kills"] = _counter(events, "oom_kill")
            if "pids" in hierarchy.controllers:
                found["pids"] = int(_read(folder / "pids.current") or 0)
                if peak := _read(folder / "pids.peak"):  # Linux 6.1 and later
                    found["pids_peak"] = int(peak)
                found["pids_refused"] = _counter(_read(folder / "pids.events"), "max")
        return found

    def pids(self) -> set[int]:
        return {
            int(pid) for _, folder in self._dirs() for pid in _read(folder / "cgroup.procs").split()
        }

    def remove(self, timeout: float = 10) -> list[str]:
        """Kill what is left in the learner's cgroup (only the kit puts processes there,
        and only the learner's), then remove it. Problems as text."""
        deadline = time.monotonic() + timeout
        while (left := self.pids()) and time.monotonic() < deadline:
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        problems = []
        for _, folder in self._dirs():
            try:
                folder.rmdir()
            except FileNotFoundError:
                pass
            except OSError as error:
                problems.append(f"cgroup {folder} was left: {error.strerror}")
        return problems


def usage_text(plan: Plan, accounts: dict[str, str]) -> str:
    """Each learner's use against their limits (``classroom status``); ``accounts`` maps
    learners' names to their Unix accounts."""
    if not plan.hierarchies:
        return "Per-learner limits: " + plan.describe()
    settings = plan.settings
    lines = [f"Per-learner limits: {plan.describe()}"]
    lines.append(f"{'learner':<16} {'memory now (peak)':<22} {'processes':<11} stopped by limits")
    for name, account in accounts.items():
        cell = plan.cell(account)
        if cell is None or not cell.exists():
            lines.append(f"{name:<16} (no cgroup)")
            continue
        use = cell.usage()
        memory = "-"
        if "memory" in use:
            memory = f"{format_size(use['memory'])} ({format_size(use['memory_peak'])})"
        pids = f"{use['pids']}/{settings.pids_max}" if "pids" in use else "-"
        stops = [
            f"{use.get(key, 0)} {what}"
            for key, what in (
                ("oom_kills", "out-of-memory kills"),
                ("pids_refused", "forks refused"),
            )
            if use.get(key)
        ]
        lines.append(f"{name:<16} {memory:<22} {pids:<11} {', '.join(stops) or 'never'}")
    return "\n".join(lines)


def _counter(text: str, name: str) -> int:
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name and value.strip().isdigit():
            return int(value)
    return 0
