"""``labkit challenge list|start|status|check|hint|solve|stop``: the CLI over the engine."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from labkit.challenges import all_scenarios


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="challenge_command", required=True)
    listing = sub.add_parser("list", help="the scenarios (and which this backend can run)")
    listing.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("start", help="a working lab, then one fault").add_argument("name")
    sub.add_parser("status", help="the current challenge, clues taken, score")
    for name, text in (
        ("check", "read the real state: exit 0 when fixed, else 1"),
        ("hint", "the next clue (costs points)"),
    ):
        sub.add_parser(name, help=text).add_argument("name", nargs="?")
    sub.add_parser("solve", help="apply the reference fix (score 0)").add_argument("name")
    sub.add_parser("stop", help="back to the working lab, nothing else changed")


def run(args: argparse.Namespace, lab_from_args: Callable[[argparse.Namespace], Any]) -> int:
    from labkit.challenges import engine

    command = args.challenge_command
    if command == "list":
        scenarios = [s.as_dict() for s in all_scenarios()]
        if args.json:
            print(json.dumps(scenarios, indent=2))
        else:
            for s in scenarios:
                print(f"{s['name']:<14} {s['title']}  (AWS: {s['aws_cost']})")
        return 0
    if command == "status":
        print(engine.status_text())
        return 0
    if command == "hint":
        print(engine.hint(args.name))
        return 0
    lab = lab_from_args(args)
    if command == "start":
        engine.start(lab, args.name)
        return 0
    if command == "stop":
        changed = engine.stop(lab)
        print(
            "Back to the working lab" + (f" (put back: {', '.join(changed)})." if changed else ".")
        )
        return 0
    result = engine.solve(lab, args.name) if command == "solve" else engine.check(lab, args.name)
    print(result)
    return 0 if result.passed else 1
