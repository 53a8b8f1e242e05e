"""The ``labkit`` command line.

Each command group lives in its own ``_add_*`` function so the parser reads like the
README: ``labkit lab``, ``labkit sandbox up|down|status|env``, ``labkit run``,
``labkit report``, ``labkit settings``, ``labkit reset``, ``labkit check``,
``labkit cleanup``, ``labkit doctor``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from labkit.config import parameter_help
from labkit.errors import LabkitError

Handler = Callable[[argparse.Namespace], int]


def _command(
    sub: argparse._SubParsersAction, name: str, handler: Handler, lab: bool = False, **kwargs
) -> argparse.ArgumentParser:
    """A subcommand that runs ``handler``; ``lab``: it works on the lab of notebook 00's
    settings, with ``-p NAME VALUE`` overriding."""
    p = sub.add_parser(name, **kwargs)
    p.set_defaults(handler=handler)
    if lab:
        p.add_argument(
            "-p",
            "--parameter",
            nargs=2,
            action="append",
            metavar=("NAME", "VALUE"),
            help=parameter_help(),
        )
    return p


def _sandbox(args: argparse.Namespace) -> int:
    from labkit import sandbox

    if args.sandbox_command == "up":
        print(sandbox.up().describe())
    elif args.sandbox_command == "down":
        print(sandbox.down())
    elif args.sandbox_command == "env":
        for key, value in sandbox.env().items():
            print(f"export {key}={shlex.quote(value)}")
    else:
        st = sandbox.status()
        print(json.dumps(st.as_dict(), indent=2) if args.json else st.describe())
        return 0 if st.running else 3
    return 0


def _add_sandbox(sub: argparse._SubParsersAction) -> None:
    p = _command(sub, "sandbox", _sandbox, help="start, stop and inspect the offline sandbox")
    ssub = p.add_subparsers(dest="sandbox_command", required=True)
    ssub.add_parser("up", help="start the sandbox (reuses a running one)")
    ssub.add_parser("down", help="stop everything the sandbox started")
    st = ssub.add_parser("status", help="what runs where")
    st.add_argument("--json", action="store_true", help="print JSON")
    ssub.add_parser("env", help="shell lines that point the aws CLI and boto3 at the sandbox")


def _settings_from_args(args: argparse.Namespace, check: bool = True):
    """The settings in use (``-p NAME VALUE``, LABKIT_BACKEND, notebook 00, defaults);
    with ``check``, printed in one line with where each came from, then a stop at once if
    the backend's requirement is missing. Other -p names (a notebook's own) are skipped."""
    from labkit.config import SETTINGS
    from labkit.state import FROM_COMMAND_LINE, resolve_settings

    given = {k: v for k, v in (args.parameter or []) if k in SETTINGS}
    resolved = resolve_settings(FROM_COMMAND_LINE, check=False, **given)
    if check:
        print(resolved.describe(), flush=True)
        resolved.check_requirements()
    return resolved


def _lab_from_args(args: argparse.Namespace):
    """The Lab of the settings in use (:func:`_settings_from_args`)."""
    from labkit.lab import Lab

    return Lab(_settings_from_args(args).config)


def _settings(args: argparse.Namespace) -> int:
    from labkit.display import table
    from labkit.errors import PrerequisiteError
    from labkit.state import PRECEDENCE, forget_settings, state_path

    if args.settings_command == "forget":
        if forget_settings():
            print(f"Forgot the settings remembered from notebook 00 (in {state_path()}).")
        else:
            print("No settings were remembered from notebook 00; nothing to forget.")
    resolved = _settings_from_args(args, check=False)
    table(
        "Lab settings",
        ["setting", "value", "from"],
        [[name, resolved.value_text(name), source] for name, source in resolved.sources.items()],
    )
    print(
        f"Each setting comes from the first of: {PRECEDENCE}. -p is for one command or run "
        "only; LABKIT_BACKEND only for the shell that exports it; notebook 00 remembers "
        f"its choice (in {state_path()}) until you choose again there or run "
        "`labkit settings forget`."
    )
    try:
        resolved.check_requirements()
    except PrerequisiteError as exc:
        print(f"\n❌ {exc}")
        return 1
    return 0


def _add_settings(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "settings",
        _settings,
        lab=True,
        help="the settings in use and where each comes from; `forget` forgets notebook 00's",
        description="Show the lab's settings and where each comes from: -p (this command "
        "only), an exported LABKIT_BACKEND, the choice remembered from notebook 00, or the "
        "default, in that order. `labkit settings forget` forgets notebook 00's choice.",
    )
    p.add_argument(
        "settings_command",
        nargs="?",
        choices=("show", "forget"),
        default="show",
        help="show (default), or forget what notebook 00 remembered",
    )


def _resets(args: argparse.Namespace) -> bool:
    """--reset / --no-reset; by default a run from 00 with --until jumps from a clean lab."""
    if args.reset is not None:
        return args.reset
    return args.until is not None and args.start in (None, "", "0", "00")


def _run(args: argparse.Namespace) -> int:
    from labkit.runner import reset_lab, run_notebooks

    parameters = dict(args.parameter or [])
    resolved = _settings_from_args(args)  # stops here if the backend cannot be used
    given = [name for name in resolved.sources if name in parameters]
    # What later commands need to reach the same lab (a run's -p is not remembered).
    again = " ".join(f"-p {name} {shlex.quote(str(parameters[name]))}" for name in given)
    if given:
        print(f"(-p {', '.join(given)}: for this run only, not remembered.)")
    if _resets(args):
        reset_lab(parameters)
        print()
    runs = run_notebooks(
        start=args.start,
        until=args.until,
        output_dir=args.output,
        parameters=parameters,
        cell_timeout=args.timeout,
        strict=not (args.no_strict or args.as_shipped),
        log_output=not args.quiet,
        solutions=not args.as_shipped,
        **({"notebook_dir": args.notebooks} if args.notebooks else {}),
    )
    print()
    for run in runs:
        print(run)
    if again:
        print(
            f"Not remembered: later commands on this lab need it again, e.g. "
            f"`labkit check {again}`, `labkit cleanup {again}`."
        )
    if args.report and runs:
        from labkit.report import build_report

        print(f"Report: {build_report(runs[0].output.parent)}")
    failed = [r for r in runs if not r.ok]
    if failed:
        print(f"labkit run: {failed[0].notebook} failed: {failed[0].error}", file=sys.stderr)
        return 1
    total = sum(r.seconds for r in runs)
    print(f"All {len(runs)} notebook(s) passed in {total:.1f} s.")
    return 0


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "run",
        _run,
        lab=True,
        help="execute the notebooks in order with papermill",
        description="Execute the notebooks in order with papermill. With --until N (and no "
        "--from) the lab is reset first, so the run brings a clean lab to the state after "
        "notebook N: an instructor can jump to any task.",
    )
    p.add_argument("--from", dest="start", metavar="NB", help="first notebook (e.g. 02)")
    p.add_argument(
        "--until", metavar="NB", help="last notebook, inclusive (e.g. 04; default 06, cleanup)"
    )
    p.add_argument(
        "--reset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="reset the lab (as `labkit reset`) before running; default: only for "
        "--until without --from",
    )
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="folder for executed notebooks (default ./runs/<timestamp>/)",
    )
    p.add_argument(
        "--report",
        action="store_true",
        help="also write <output>/report.html: every executed notebook, readable offline",
    )
    p.add_argument("--timeout", type=int, default=900, help="per-cell timeout, seconds")
    p.add_argument(
        "--no-strict", action="store_true", help="let failed checks pass (default: LABKIT_STRICT=1)"
    )
    p.add_argument(
        "--as-shipped",
        action="store_true",
        help="leave the exercise cells as the learner gets them (blanks and all) instead of "
        "filling in the reference solutions; implies --no-strict",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="do not echo cell output")
    p.add_argument(
        "--notebooks",
        type=Path,
        metavar="DIR",
        help="run this copy of the notebooks folder (a learner's own) instead of the kit's",
    )


def _report(args: argparse.Namespace) -> int:
    from labkit.report import build_report

    print(f"Report: {build_report(args.run_dir, args.output)}")
    return 0


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "report",
        _report,
        help="one offline HTML page of an executed run (every notebook, in order)",
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a `labkit run` output folder")
    p.add_argument(
        "-o", "--output", type=Path, help="the HTML file to write (default RUN_DIR/report.html)"
    )


def _reset(args: argparse.Namespace) -> int:
    from labkit.runner import reset_lab

    reset_lab(dict(args.parameter or []))
    print("The lab is clean; the sandbox (if any) keeps running.")
    return 0


def _check(args: argparse.Namespace) -> int:
    from labkit.display import table
    from labkit.tasks import all_tasks

    lab = _lab_from_args(args)
    tasks = all_tasks()
    results = [(task, task.evaluate(lab)) for task in tasks]
    table(
        f"Lab status ({lab.backend.value})",
        ["task", "status", "detail", "notebook"],
        [
            [
                f"{r.label}: {r.title}",
                "✅ done" if r.passed else "❌ not yet",
                r.message,
                task.notebook,
            ]
            for task, r in results
        ],
    )
    return 0 if all(r.passed for _, r in results) else 1


def _cleanup(args: argparse.Namespace) -> int:
    from labkit import teardown

    report = teardown.teardown(_lab_from_args(args))  # the lab environment too
    return 0 if report.ok else 1


def _status(args: argparse.Namespace) -> int:
    from labkit import environment
    from labkit.aws import sandbox_status
    from labkit.config import Backend

    lab = _lab_from_args(args)
    print(environment.status_text(lab))
    return 3 if lab.backend is Backend.SANDBOX and not sandbox_status().running else 0


def _lab(args: argparse.Namespace) -> int:
    from labkit import launch

    server = launch.plan(
        args.notebooks or launch.default_notebooks(),
        port=args.port,
        browser=args.browser,
    )
    from labkit.lab import Lab
    from labkit.state import FROM_COMMAND_LINE

    resolved = _settings_from_args(args)
    lab = Lab(resolved.config)
    lab.start()  # the sandbox, if it is the backend; else says where calls go
    # -p backend holds for this session's kernels (as an exported LABKIT_BACKEND would).
    return launch.run(server, lab, pin_backend=resolved.sources["backend"] == FROM_COMMAND_LINE)


def _add_lab(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "lab",
        _lab,
        lab=True,
        help="start the sandbox if needed and open JupyterLab on the notebooks (the way in)",
        description="Start the sandbox (if it is the backend), then JupyterLab on the "
        "notebooks folder, on 127.0.0.1 with a token, with the lab's AWS environment exported "
        "so terminals and !aws cells reach it. Prints the URL. Works as root too. The login "
        "token is a new random one, or JUPYTER_TOKEN if you export it (never an option: "
        "every user of the host can read a command line).",
    )
    p.add_argument(
        "--port", type=int, help="port on 127.0.0.1 (default: 8888 or the next free one)"
    )
    p.add_argument(
        "--browser",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="open a browser (default: only when there is a display)",
    )
    p.add_argument(
        "--notebooks",
        type=Path,
        help="the notebooks folder (default: the kit's); the installed kit's, or one you "
        "cannot write to, is copied once to ~/labkit-notebooks and opened there",
    )


def _classroom(args: argparse.Namespace) -> int:
    from labkit.classroom import board, hub, limits
    from labkit.classroom.state import Classroom

    if args.classroom_command == "up":
        hub.up(
            args.roster,
            args.state,
            args.ip,
            args.port,
            hub.workshop_password(args.password, args.password_file),
            board_ip=args.board_ip,
            board_port=args.board_port,
            learner_limits=limits.Settings(
                limits.parse_size(args.memory_max), args.pids_max, args.cpu_weight
            ),
        )
        return 0
    if args.classroom_command == "down":
        hub.down(args.state, delete_accounts=args.delete_accounts)
        return 0
    room = Classroom.load(args.state)
    if args.classroom_command == "status":
        rows = board.board(room)
        if args.html:
            args.html.write_text(board.as_html(rows))
        if args.json:
            print(json.dumps([row.__dict__ for row in rows], indent=1))
        else:
            print(board.as_text(rows))
            accounts = {learner.name: learner.unix_user for learner in room.learners}
            print(limits.usage_text(limits.Plan.from_dict(room.limits), accounts))
        return 0
    if args.classroom_command == "reset":
        print(board.reset(room, args.learner))
        return 0
    print(board.bring_to(room, args.learner, args.task))
    return 0


def _add_classroom(sub: argparse._SubParsersAction) -> None:
    from labkit.classroom.state import DEFAULT_STATE_DIR

    p = _command(
        sub,
        "classroom",
        _classroom,
        help="JupyterHub with a private lab per learner, and the board (root)",
    )
    p.add_argument(
        "--state", type=Path, default=DEFAULT_STATE_DIR, help="the classroom's state folder"
    )
    csub = p.add_subparsers(dest="classroom_command", required=True)
    up = csub.add_parser("up", help="accounts from the roster, then JupyterHub")
    up.add_argument("--roster", type=Path, required=True, help="learner names, one a line")
    up.add_argument("--ip", default="127.0.0.1", help="the hub's listening address")
    up.add_argument("--port", type=int, default=8000, help="the hub's port")
    up.add_argument(
        "--password",
        nargs="?",
        const=True,  # asked; a value given here is refused (ps shows it to every user)
        metavar="",
        help="one workshop password for all, asked at a prompt (default: one generated "
        "password per learner)",
    )
    up.add_argument(
        "--password-file",
        help="read the workshop password from this file's first line ('-': standard input)",
    )
    up.add_argument("--board-ip", default="127.0.0.1", help="the live board's address")
    up.add_argument("--board-port", type=int, default=8001, help="the live board's port")
    up.add_argument(
        "--memory-max",
        default="1.5G",
        help="each learner's memory, all their processes and containers together (default "
        "1.5G; the whole lab peaks near 550M)",
    )
    up.add_argument(
        "--pids-max",
        type=int,
        default=1024,
        help="each learner's processes and threads together (default 1024)",
    )
    up.add_argument(
        "--cpu-weight",
        type=int,
        default=100,
        help="each learner's CPU weight, 1-10000, the same for all (default 100)",
    )
    down = csub.add_parser("down", help="stop the hub and everything it started")
    down.add_argument("--delete-accounts", action="store_true", help="also remove accounts")
    st = csub.add_parser("status", help="the board: each learner's tasks, sandbox, where stuck")
    st.add_argument("--json", action="store_true")
    st.add_argument("--html", type=Path, help="also write the board as an HTML page")
    reset = csub.add_parser("reset", help="back to a clean lab for one learner")
    reset.add_argument("learner")
    goto = csub.add_parser("goto", help="bring one learner to the end of task N (solved)")
    goto.add_argument("learner")
    goto.add_argument("task", type=int)


def _doctor(args: argparse.Namespace) -> int:
    from labkit import doctor

    facts = doctor.gather()
    findings = doctor.diagnose(facts)
    if args.json:
        print(json.dumps(doctor.as_dict(facts, findings), indent=2))
    else:
        print(doctor.render(facts, findings))
    return 1 if any(f.status == "missing" for f in findings) else 0


def _add_doctor(sub: argparse._SubParsersAction) -> None:
    p = _command(
        sub,
        "doctor",
        _doctor,
        help="check this machine for the sandbox: Docker, registry, sample image, ports",
        description="What the offline sandbox needs on this machine (Linux, macOS, Windows, "
        "WSL2), what is missing, and the fix for each, in one screen.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _challenge(args: argparse.Namespace) -> int:
    from labkit.challenges.command import run

    return run(args, _lab_from_args)


def _add_challenge(sub: argparse._SubParsersAction) -> None:
    from labkit.challenges.command import add_arguments

    help_text = "break and fix: diagnose a real ECS fault (list, start, check, hint, solve, stop)"
    add_arguments(_command(sub, "challenge", _challenge, lab=True, help=help_text))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit", description="ECS Lab Kit: learn Amazon ECR and ECS hands-on."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_lab(sub)
    _add_sandbox(sub)
    _add_run(sub)
    _add_report(sub)
    _add_settings(sub)
    for handler, help_text in (  # the commands on the lab, each named after its handler
        (_reset, "back to a clean lab: delete what the kit created, forget the service name"),
        (_check, "print every task's status as a table"),
        (_cleanup, "delete everything the kit created (as notebook 06)"),
        (_status, "backend, identity, region, and the lab environment (or the sandbox)"),
    ):
        _command(sub, handler.__name__.lstrip("_"), handler, lab=True, help=help_text)
    _add_classroom(sub)
    _add_doctor(sub)
    _add_challenge(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except LabkitError as exc:
        print(f"labkit: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("labkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
