"""Who is @champion: the promotion rule of train.py, and every alias change recorded as a tag of
the registered model (who, when, from, to, why), which champion.py reads to roll back."""
from __future__ import annotations

import getpass
import json
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from textops.registry import CHALLENGER, CHAMPION, aliases_of, model_exists

# --------------------------------------------------------------------------------------------
# Alias changes and their history (registered-model tags, visible in the MLflow UI)
# --------------------------------------------------------------------------------------------
ALIAS_EVENT_PREFIX = "textops.alias_event."


def actor(script: str) -> str:
    """Who is changing the registry: user@host and the command."""
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name in some containers
        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()} ({script})"


def move_alias(client, name: str, alias: str, version: str, reason: str, by: str,
               kind: str = "training") -> dict[str, Any]:
    """Point ``alias`` at ``version`` and record the change (who, when, from, to, why, kind:
    training / rollback / manual) as a tag of the registered model; returns the event."""
    previous = aliases_of(client, name).get(alias)
    client.set_registered_model_alias(name, alias, str(version))
    now = time.time()
    event = {"alias": alias, "from": previous, "to": str(version), "kind": kind, "by": by,
             "why": reason,
             "at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")}
    key = f"{ALIAS_EVENT_PREFIX}{int(now * 1000):013d}.{alias}"
    client.set_registered_model_tag(name, key, json.dumps(event)[:5000])
    return event


def alias_history(client, name: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Recorded alias changes, oldest first (optionally of one alias)."""
    if not model_exists(client, name):
        return []
    tags = client.get_registered_model(name).tags or {}
    events = []
    for key in sorted(k for k in tags if k.startswith(ALIAS_EVENT_PREFIX)):
        try:
            event = json.loads(tags[key])
        except ValueError:
            continue
        if alias is None or event.get("alias") == alias:
            events.append(event)
    return events


def previous_champion(client, name: str) -> str | None:
    """The champion to roll back to: the latest earlier champion that is neither the current
    one nor one that a rollback already moved away from (None when there is none)."""
    current = aliases_of(client, name).get(CHAMPION)
    events = alias_history(client, name, CHAMPION)
    excluded = {current} | {e.get("from") for e in events if e.get("kind") == "rollback"}
    for event in reversed(events):
        candidate = event.get("from")
        if not candidate or candidate in excluded:
            continue
        try:
            client.get_model_version(name, candidate)
        except Exception:  # noqa: BLE001 - deleted since
            excluded.add(candidate)
            continue
        return candidate
    return None


# --------------------------------------------------------------------------------------------
# Promotion
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Decision:
    alias: str  # CHAMPION or CHALLENGER
    reason: str

    @property
    def promoted(self) -> bool:
        return self.alias == CHAMPION


def decide_promotion(metric: str, score: float, threshold: float, champion_version: str | None,
                     champion_score: float | None) -> Decision:
    """The promotion rule: reach the threshold AND (no champion OR beat it on the same rows)."""
    if score < threshold:
        return Decision(CHALLENGER, f"{metric} {score:.4f} is below the threshold {threshold:.4f}")
    if champion_version is None:
        return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f} "
                                  f"and there is no champion yet")
    if champion_score is None:
        return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f}; "
                                  f"the current champion v{champion_version} could not be evaluated")
    if score > champion_score:
        return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f} and "
                                  f"beats champion v{champion_version} ({champion_score:.4f}) "
                                  f"on the same test rows")
    return Decision(CHALLENGER, f"{metric} {score:.4f} does not beat champion v{champion_version} "
                                f"({champion_score:.4f}) on the same test rows")
