"""The ``labkit`` command line.

Each command group lives in its own ``_add_*`` function so the parser reads like the
README: ``labkit sandbox up|down|status|env``, ``labkit run``, ``labkit check``,
``labkit cleanup``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence

from labkit.errors import LabkitError

Handler = Callable[[argparse.Namespace], int]


def _sandbox_up(args: argparse.Namespace) -> int:
    from labkit import sandbox

    st = sandbox.up()
    print(st.describe())
    return 0


def _sandbox_down(args: argparse.Namespace) -> int:
    from labkit import sandbox

    print(sandbox.down())
    return 0


def _sandbox_status(args: argparse.Namespace) -> int:
    from labkit import sandbox

    st = sandbox.status()
    print(json.dumps(st.as_dict(), indent=2) if args.json else st.describe())
    return 0 if st.running else 3


def _sandbox_env(args: argparse.Namespace) -> int:
    from labkit import sandbox

    for key, value in sandbox.env().items():
        print(f"export {key}={value}")
    return 0


def _add_sandbox(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sandbox", help="start, stop and inspect the offline sandbox")
    ssub = p.add_subparsers(dest="sandbox_command", required=True)
    ssub.add_parser("up", help="start the sandbox (reuses a running one)").set_defaults(
        handler=_sandbox_up
    )
    ssub.add_parser("down", help="stop everything the sandbox started").set_defaults(
        handler=_sandbox_down
    )
    st = ssub.add_parser("status", help="what runs where")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(handler=_sandbox_status)
    ssub.add_parser(
        "env", help="shell lines that point the aws CLI and boto3 at the sandbox"
    ).set_defaults(handler=_sandbox_env)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labkit", description="ECS Lab Kit: learn Amazon ECR and ECS hands-on."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_sandbox(sub)
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
