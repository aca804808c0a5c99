#!/usr/bin/env python
"""Show and change who is @champion: the alias history, and rollback to the previous champion.

  python champion.py history               every recorded alias change (when, alias, from -> to,
                                           kind, who, why), oldest first
  python champion.py rollback --reason TXT move @champion back to the previous champion (the
                                           latest earlier one that was not rolled back from)
  python champion.py set VERSION --reason TXT
                                           point @champion at a given version

A version of another task (other classes or label column) needs --allow-new-classes REASON, as
in train.py. One alias change at a time: champion.py and train.py's promotion step take the
model's alias lock (<lock dir>/alias-<model>.lock) while they read and move the alias.

Every change made here or by train.py is recorded as a tag of the registered model
(textops.alias_event.<time>.<alias>), visible on the model's page in the MLflow UI.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from common import BadInputError, ExitCode, make_parser, run_main, start
from textops import promotion, registry, training

log = logging.getLogger("champion")


def build_parser(config: dict[str, Any]) -> argparse.ArgumentParser:
    parser = make_parser("champion", config, __doc__, epilog="Example: python champion.py "
                         "rollback --reason 'v7 misroutes refunds, see INC-123'")
    parser.add_argument("action", choices=("history", "rollback", "set"))
    parser.add_argument("version", nargs="?", help="version for 'set' (e.g. 3 or v3)")
    parser.add_argument("--reason", default="",
                        help="why (recorded with the change; required for rollback and set)")
    return parser


def print_history(events: list[dict[str, Any]], name: str) -> None:
    if not events:
        print(f"no recorded alias changes for {name}")
    for e in events:
        print(f"{e.get('at')}  @{e.get('alias'):<10} v{e.get('from') or '-'} -> "
              f"v{e.get('to') or '?'}  [{e.get('kind', '?')}] by {e.get('by')}: {e.get('why')}")


def main(argv: list[str] | None = None) -> int:
    job, args = start("champion", build_parser, argv)
    tracking = job.tracking
    name = tracking.model_name
    if args.action != "history" and not args.reason.strip():
        raise BadInputError(f"{args.action} needs --reason TEXT: it is recorded with the change")
    if args.action == "set" and not args.version:
        raise BadInputError("set needs a VERSION, e.g. python champion.py set 3 --reason ...")
    if len(args.reason) > promotion.MAX_REASON:
        raise BadInputError(f"--reason is {len(args.reason)} characters long; at most "
                            f"{promotion.MAX_REASON}: link to the incident instead")
    client = registry.connect(tracking)
    if args.action == "history":
        print_history(promotion.alias_history(client, name), name)
        return int(ExitCode.OK)
    # read, check and move under the alias lock that train.py's promotion step takes too
    with promotion.alias_lock(job.train.lock_dir, name):
        return move_champion(client, name, args, job.train.allow_new_classes)


def move_champion(client: Any, name: str, args: argparse.Namespace, allow_reason: str) -> int:
    """rollback / set, with the alias lock held: the current champion is read here, so the
    recorded change is the one that happened."""
    current = registry.aliases_of(client, name).get(registry.CHAMPION)
    if args.action == "rollback":
        target = promotion.previous_champion(client, name)
        if target is None:
            raise BadInputError(f"{name} has no earlier champion to roll back to (current: "
                                f"v{current}); use 'set VERSION' to choose one")
        shown = f"v{current}" if current else "no champion"
        kind, why = "rollback", f"rollback from {shown}: {args.reason.strip()}"
    else:
        target = registry.resolve_version(client, name, args.version.lstrip("vV")).version
        kind, why = "manual", args.reason.strip()
    if target == current:
        print(f"{name} @champion is already v{target}; nothing changed")
        return int(ExitCode.OK)
    if current is not None:  # another task: the same guard as train.py's
        allowed = training.allowed_change(name, training.task_differences(
            training.version_task(client, name, current), current,
            training.version_task(client, name, target), f"v{target}"), allow_reason,
            "choose a version of the same task")
        why = f"{why} (task change allowed: {allowed})" if allowed else why
    registry.load_pipeline(name, target)  # a version that cannot load must not serve (exit 4)
    event = promotion.move_alias(client, name, registry.CHAMPION, target, why,
                                 promotion.actor("champion.py"), kind=kind)
    log.info("@champion v%s -> v%s (%s): %s", current, target, kind, why)
    print(f"{name} @champion: v{event['from'] or '-'} -> v{event['to']} ({kind}: {why})")
    return int(ExitCode.OK)


if __name__ == "__main__":
    sys.exit(run_main("champion.py", main))
