"""Who is @champion: the promotion rule of train.py, and every alias change recorded as a tag of
the registered model (who, when, from, to, why), which champion.py reads to roll back."""
from __future__ import annotations

import getpass
import json
import logging
import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.stats import binom, norm

from textops.errors import BadInputError
from textops.locking import exclusive
from textops.metrics import macro_f1_from_confusion
from textops.registry import CHALLENGER, CHAMPION, aliases_of, model_exists

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Alias changes and their history (registered-model tags, visible in the MLflow UI)
# --------------------------------------------------------------------------------------------
ALIAS_EVENT_PREFIX = "textops.alias_event."
MAX_REASON = 1000  # characters of a recorded reason (champion.py refuses longer ones)
MAX_TAG = 5000  # MLflow's limit on a tag value: an event must fit whole, as valid JSON
ALIAS_LOCK_WAIT = 120.0  # seconds an alias change waits for another one (each takes a second)


def alias_lock(lock_dir: Path, name: str, wait: float = ALIAS_LOCK_WAIT):
    """One alias change of model ``name`` at a time, on this machine: train.py's promotion step
    and champion.py hold ``<lock_dir>/alias-<name>.lock`` while they read the alias, decide and
    move it, so neither overwrites a change it did not see."""
    return exclusive(Path(lock_dir) / f"alias-{name}.lock", wait, "an alias change of this model")


def event_json(event: dict[str, Any]) -> str:
    """The event as the JSON of one tag value: a long reason is cut *before* serialising, so the
    record is always valid JSON (a record cut afterwards is unreadable and was skipped)."""
    event = dict(event)
    why = str(event.get("why") or "")
    if len(why) > MAX_REASON:
        why = why[:MAX_REASON] + f" ... (cut, {len(why)} characters)"
    event["why"] = why
    text = json.dumps(event, ensure_ascii=False)
    while len(text) > MAX_TAG:  # long names elsewhere in the event: cut the reason further
        why = why[: int(len(why) * 0.8)]
        event["why"] = why + " ... (cut)"
        text = json.dumps(event, ensure_ascii=False)
    return text


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
    text = event_json(event)
    client.set_registered_model_tag(name, key, text)
    return json.loads(text)


def alias_history(client, name: str, alias: str | None = None) -> list[dict[str, Any]]:
    """Recorded alias changes, oldest first (optionally of one alias)."""
    if not model_exists(client, name):
        return []
    tags = client.get_registered_model(name).tags or {}
    events = [read_event(key, tags[key])
              for key in sorted(k for k in tags if k.startswith(ALIAS_EVENT_PREFIX))]
    return [e for e in events if alias is None or e.get("alias") == alias]


def read_event(key: str, text: str) -> dict[str, Any]:
    """One recorded alias change, or an "unreadable" record in its place (shown by history,
    refused by rollback) when it is not of the shape this module writes: invalid JSON (an
    earlier release cut long reasons mid-JSON), no alias, or versions that are not numbers."""
    problem = None
    try:
        event = json.loads(text)
    except ValueError:
        event, problem = None, "not valid JSON"
    if problem is None:
        problem = _event_problem(event, key)
    if problem is None:
        return event
    log.warning("alias history: the record %s is unreadable (%s)", key, problem)
    return {"alias": key.rsplit(".", 1)[-1], "from": None, "to": None, "kind": "?", "by": None,
            "why": f"unreadable record ({problem})",
            "at": key[len(ALIAS_EVENT_PREFIX):].split(".")[0], "unreadable": key}


def _event_problem(event: Any, key: str) -> str | None:
    """What makes a parsed record unusable (None: nothing)."""
    if not isinstance(event, dict):
        return "not an object"
    if event.get("alias") != key.rsplit(".", 1)[-1]:
        return "no alias, or not the one its key names"
    for end in ("from", "to"):
        value = event.get(end)
        if end == "from" and value is None:
            continue
        if not isinstance(value, str) or not value.isdigit():
            return f"{end!r} is {json.dumps(value)[:40]}, not a version number"
    return None


def previous_champion(client, name: str) -> str | None:
    """The champion to roll back to: the latest earlier champion that is neither the current
    one nor one that a rollback already moved away from (None when there is none)."""
    current = aliases_of(client, name).get(CHAMPION)
    events = alias_history(client, name, CHAMPION)
    broken = [e["unreadable"] for e in events if e.get("unreadable")]
    if broken:
        raise BadInputError(f"the @{CHAMPION} history of {name} has {len(broken)} unreadable "
                            f"record(s) ({broken[0]}), so the previous champion is not known for "
                            f"sure; choose one with: champion.py set VERSION --reason ...")
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


def still_valid(decision: Decision, compared: str | None, current: str | None) -> Decision:
    """``decision`` as it stands now that the alias lock is held: a promotion decided against
    champion ``compared`` is withdrawn when @champion has moved since (champion.py during the
    training), since this model was never compared with the new champion."""
    if not decision.promoted or compared == current:
        return decision
    return Decision(CHALLENGER, f"@champion moved from v{compared or '-'} to v{current or '-'} "
                                f"while this model trained, so it was not compared with the "
                                f"champion now in place; not promoted ({decision.reason})")


@dataclass(frozen=True)
class PairedTest:
    """Is the new model better than the champion on the same test rows, beyond noise?

    ``difference``: new minus champion metric; ``interval``: the (1 - 2 alpha) bootstrap
    interval of that difference (its lower bound > 0 goes with p < alpha); ``pvalue``:
    one-sided, for "the new model is not better"."""

    method: str  # "exact McNemar" (accuracy) or "paired bootstrap" (macro-F1)
    difference: float
    interval: tuple[float, float]
    pvalue: float


def paired_test(metric: str, y_true: Any, new: Any, old: Any, alpha: float = 0.05,
                resamples: int = 2000, seed: int = 0) -> PairedTest:
    """Exact one-sided McNemar test for accuracy, paired bootstrap for macro-F1; the interval is
    a paired bootstrap in both cases. Resampling draws counts of the distinct (true, new, old)
    label triples, so it costs the same for a thousand test rows or a million."""
    y_true, new, old = (np.asarray(a, dtype=object).astype(str) for a in (y_true, new, old))
    classes, codes = np.unique(np.concatenate([y_true, new, old]), return_inverse=True)
    k, n = len(classes), len(y_true)
    t, a, b = codes[:n], codes[n:2 * n], codes[2 * n:]
    triples, counts = np.unique((t * k + a) * k + b, return_counts=True)
    tt, aa, bb = triples // (k * k), (triples // k) % k, triples % k
    weights = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
    if metric == "accuracy":
        gain = (aa == tt).astype(float) - (bb == tt)
        boot = weights @ gain / n
        difference = float(counts @ gain / n)
        wins, losses = int(counts[gain > 0].sum()), int(counts[gain < 0].sum())
        pvalue = float(binom.sf(wins - 1, wins + losses, 0.5)) if wins + losses else 1.0
        method = "exact McNemar"
    else:
        present = np.unique(t)

        def scores(w: np.ndarray, pred: np.ndarray) -> np.ndarray:
            """Macro-F1 for each row of triple counts ``w``, with ``pred`` the predictions."""
            cells = sp.csr_matrix((np.ones(len(pred)), (np.arange(len(pred)), tt * k + pred)),
                                  shape=(len(pred), k * k))
            confusion = np.asarray((cells.T @ w.T).T)
            return macro_f1_from_confusion(confusion.reshape(-1, k, k), present)

        boot = scores(weights, aa) - scores(weights, bb)
        difference = float(scores(counts[None, :].astype(float), aa)[0]
                           - scores(counts[None, :].astype(float), bb)[0])
        pvalue = float((np.sum(boot <= 0) + 1) / (resamples + 1))
        method = "paired bootstrap"
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return PairedTest(method, difference, (float(low), float(high)), pvalue)


@dataclass(frozen=True)
class AuditComparison:
    """The champion and the new model on the ledger's audit rows (recent labelled rows neither
    was trained on), each row weighted by its design weight so the rows stand for their nights:
    weighted accuracies, and the paired test of their difference (``test.pvalue``: one-sided,
    for "the new model is not better"; ``test.interval``: its 1 - 2 alpha interval)."""

    rows: int
    batches: int  # labelled samples (nights) the rows come from
    accuracy: float  # the new model's
    champion_accuracy: float
    test: PairedTest

    def describe(self) -> str:
        t = self.test
        return (f"on {self.rows} audit rows of {self.batches} batch(es) of the labels ledger, "
                f"accuracy {self.accuracy:.4f} vs {self.champion_accuracy:.4f} "
                f"({t.difference:+.4f}, {t.method} p={t.pvalue:.3g})")


def audit_comparison(y_true: Any, new: Any, old: Any, weights: Any, batches: int,
                     alpha: float = 0.05) -> AuditComparison:
    """Weighted (Hajek) accuracies of both models and the paired difference: its variance by
    linearisation, ``sum w_i^2 (d_i - D)^2 / (sum w_i)^2``, the one-sided p-value and interval
    from the normal distribution (a few hundred rows: the ledger's audit part)."""
    y_true, new, old = (np.asarray(a, dtype=object).astype(str) for a in (y_true, new, old))
    w = np.asarray(weights, dtype=float)
    right_new, right_old = (new == y_true).astype(float), (old == y_true).astype(float)
    total = float(w.sum())
    d = right_new - right_old
    difference = float(w @ d / total)
    se = float(np.sqrt(np.sum(w ** 2 * (d - difference) ** 2)) / total)
    if se > 0:
        pvalue = float(norm.sf(difference / se))
        half = float(norm.ppf(1 - alpha)) * se
    else:  # the same verdict on every row: no evidence either way unless they differ
        pvalue = 0.0 if difference > 0 else 1.0
        half = 0.0
    test = PairedTest("weighted paired z-test", difference, (difference - half, difference + half),
                      pvalue)
    return AuditComparison(len(y_true), batches, float(w @ right_new / total),
                           float(w @ right_old / total), test)


def decide_promotion(metric: str, score: float, threshold: float, champion_version: str | None,
                     champion_score: float | None, test: PairedTest | None = None,
                     alpha: float = 0.05, min_gain: float = 0.0,
                     audit: AuditComparison | None = None,
                     compared: float | None = None) -> Decision:
    """The promotion rule: reach the threshold AND (no champion OR beat it on the same rows, by
    at least ``min_gain`` and, when ``test`` is given, significantly at level ``alpha``).

    With the ledger's ``audit`` rows as well: a model the test rows promote is still kept as
    challenger when it is significantly *worse* on the audit rows; and where the test rows
    cannot tell the two apart (significant neither way), a model significantly better on the
    audit rows (by at least ``min_gain``) is promoted. Noise promotes nothing.

    ``compared``: the new model's score on the rows the champion was scored on, when those are a
    sample of the test rows (``score``, on all of them, then meets the threshold only)."""
    decision = _decide_on_test_rows(metric, score, threshold, champion_version, champion_score,
                                    test, alpha, min_gain, compared)
    if audit is None or test is None or champion_version is None or champion_score is None \
            or score < threshold:
        return decision
    on_audit = audit.describe()
    if decision.promoted:
        if audit.test.interval[1] < 0:
            return Decision(CHALLENGER, f"{decision.reason}, but significantly worse {on_audit}: "
                                        f"kept as challenger")
        return Decision(CHAMPION, f"{decision.reason}; {on_audit}")
    test_tells = test.pvalue < alpha or test.interval[1] < 0
    if not test_tells and audit.test.pvalue < alpha and audit.test.difference >= min_gain:
        return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f}; "
                                  f"the test rows cannot tell it from champion v{champion_version} "
                                  f"({champion_score:.4f}, {test.method} p={test.pvalue:.3g}), but "
                                  f"it is significantly better {on_audit}")
    return Decision(CHALLENGER, f"{decision.reason}; {on_audit}")


def _decide_on_test_rows(metric: str, score: float, threshold: float,
                         champion_version: str | None, champion_score: float | None,
                         test: PairedTest | None, alpha: float, min_gain: float,
                         compared: float | None = None) -> Decision:
    """The rule on the test rows alone (see :func:`decide_promotion`)."""
    if score < threshold:
        return Decision(CHALLENGER, f"{metric} {score:.4f} is below the threshold {threshold:.4f}")
    if champion_version is None:
        return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f} "
                                  f"and there is no champion yet")
    if champion_score is None:
        return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f}; "
                                  f"the current champion v{champion_version} could not be evaluated")
    rows = "the same test rows" if compared is None else "the same sample of the test rows"
    against = score if compared is None else compared
    if against <= champion_score:
        return Decision(CHALLENGER, f"{metric} {against:.4f} does not beat champion "
                                    f"v{champion_version} ({champion_score:.4f}) on {rows}")
    beats = (f"{metric} {against:.4f} beats champion v{champion_version} ({champion_score:.4f}) on "
             f"{rows}")
    if against - champion_score < min_gain:
        return Decision(CHALLENGER, f"{beats}, but by {against - champion_score:.4f}, less than the "
                                    f"minimum gain {min_gain:.4f}")
    if test is not None and not test.pvalue < alpha:
        return Decision(CHALLENGER, f"{beats}, but not significantly ({test.method} p="
                                    f"{test.pvalue:.3f} >= {alpha:g}): kept as challenger")
    significance = "" if test is None else f", significantly ({test.method} p={test.pvalue:.3g})"
    shown = "" if compared is None else f" ({against:.4f} on them)"
    return Decision(CHAMPION, f"{metric} {score:.4f} reaches the threshold {threshold:.4f} and "
                              f"beats champion v{champion_version} ({champion_score:.4f}) on "
                              f"{rows}{shown}{significance}")
