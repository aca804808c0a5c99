"""The labels ledger: every labelled row that ``monitor.py --labels`` accepted, kept once, with
where it came from, so that the labels a night's budget paid for are not used once and lost.

One SQLite file (the standard library's ``sqlite3``; transactions make each append all or
nothing, also under ``kill -9``, and SQLite's own locking lets two monitor.py runs append at
once). Each row records the text and its label, the id columns, the model version that
predicted it with its prediction and probability, its stratum, inclusion probability and
weight, the batch (sample id, data hash, night), who labelled it and when, and whether it
belongs to the batch's **audit part**: a seeded uniform share of each batch's labelled rows
that is meant never to be trained on, so that later comparisons on recent data stay honest.

The same labels file given twice adds nothing (a row is its sample id and key). A text that
gets another label than an earlier row of another batch is a conflict: both rows are kept (the
later one wins when labels are read back), and the conflict is counted. The ledger is the
user's data: it is never truncated, re-created or rewritten; one that cannot be read stops the
run (exit 4) with nothing written.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from textops.errors import TrackingUnavailableError

AUDIT_SHARE = 0.2  # of each batch's labelled rows, never to be trained on
BUSY_SECONDS = 60.0  # how long an append waits for another one
FIELDS = ("sample_id", "row_key", "text", "label", "ids", "model_name", "model_version",
          "prediction", "probability", "stratum", "stratum_rows", "inclusion_probability",
          "weight", "data_sha256", "night", "audit", "labeller", "labelled_at")
TYPES = {"audit": "INTEGER", "stratum": "INTEGER", "stratum_rows": "INTEGER",
         "probability": "REAL", "inclusion_probability": "REAL", "weight": "REAL"}
COLUMNS = ", ".join(f"{name} {TYPES.get(name, 'TEXT')}" for name in FIELDS)
SCHEMA = f"CREATE TABLE IF NOT EXISTS labels ({COLUMNS}, PRIMARY KEY (sample_id, row_key))"


@dataclass(frozen=True)
class Appended:
    """What one append did: rows added, rows already there (the same file given again), and
    rows whose text an earlier batch labelled otherwise (kept both; the later one wins)."""

    added: int
    already: int
    conflicts: int


def in_audit(sample_id: str, row_key: str, share: float = AUDIT_SHARE) -> bool:
    """Whether a row belongs to its batch's audit part: a seeded uniform draw that depends on
    the row alone, so the same row is always on the same side."""
    digest = hashlib.sha256(f"{sample_id}\x1f{row_key}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64 < share


def append(path: Path, rows: Iterable[dict[str, Any]]) -> Appended:
    """Add ``rows`` (dicts with :data:`FIELDS` but ``audit``) to the ledger at ``path`` in one
    transaction; TrackingUnavailableError (exit 4) when the ledger cannot be read or written."""
    rows = list(rows)
    with _opened(path) as db:
        added = conflicts = 0
        for row in rows:
            record = {**row, "audit": int(in_audit(row["sample_id"], row["row_key"]))}
            before = db.total_changes
            db.execute(f"INSERT OR IGNORE INTO labels ({', '.join(FIELDS)}) VALUES "
                       f"({', '.join('?' for _ in FIELDS)})", [record[f] for f in FIELDS])
            if db.total_changes == before:
                continue
            added += 1
            if row.get("text") is not None and db.execute(
                    "SELECT 1 FROM labels WHERE text = ? AND label != ? AND sample_id != ? LIMIT 1",
                    (row["text"], row["label"], row["sample_id"])).fetchone():
                conflicts += 1
    return Appended(added, len(rows) - added, conflicts)


def read(path: Path) -> list[dict[str, Any]]:
    """Every row of the ledger, oldest first (ids as a dict)."""
    with _opened(path, create=False) as db:
        cursor = db.execute(f"SELECT {', '.join(FIELDS)} FROM labels ORDER BY labelled_at, rowid")
        return [{**dict(zip(FIELDS, values)), "ids": json.loads(values[FIELDS.index("ids")])}
                for values in cursor]


@contextlib.contextmanager
def _opened(path: Path, create: bool = True) -> Iterator[sqlite3.Connection]:
    """The ledger in one IMMEDIATE transaction (committed at the end, rolled back on failure)."""
    shown = f"the labels ledger {path}"
    if not create and not path.exists():
        raise TrackingUnavailableError(f"{shown} does not exist; monitor.py --labels creates it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(path, timeout=BUSY_SECONDS, isolation_level=None)
    except (OSError, sqlite3.Error) as exc:
        raise TrackingUnavailableError(f"{shown} cannot be opened ({exc}); nothing was written: "
                                       f"fix its folder's permissions") from None
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute(SCHEMA)
        yield db
        db.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")
        raise TrackingUnavailableError(
            f"{shown} cannot be read or written ({exc}); nothing was written to it and it was "
            f"left as it is: restore it from a backup, or point TEXTOPS_MONITOR_LEDGER elsewhere"
        ) from None
    finally:
        db.close()



# --------------------------------------------------------------------------------------------
# Reading the ledger back for training (train.py --with-ledger) and for the audit comparison
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """One labelled sample as the ledger holds it: where it came from and how many of its rows
    a training run used (``rows``) or kept aside as its audit part (``audit``)."""

    sample_id: str
    data_sha256: str
    night: str
    rows: int
    audit: int


@dataclass(frozen=True)
class Selection:
    """What a training run takes from the ledger (one model's rows).

    ``texts``/``labels``: the rows to train on, one per text, its latest label (audit rows
    excluded); ``audit``: the audit rows (text, label as last given, weight, batch), never
    trained on; ``superseded``: older labels of a text a later row relabelled or repeated;
    ``conflicts``: texts whose labels disagree over time; ``digest``: SHA-256 of what was
    used, for MLflow's dataset lineage."""

    texts: list[str]
    labels: list[str]
    audit: list[dict[str, Any]]
    batches: list[Batch]
    superseded: int
    conflicts: int
    digest: str
    ids: list[dict[str, Any]] = field(default_factory=list)  # per text: the ids of its latest row

    @property
    def nights(self) -> list[str]:
        return sorted({b.night for b in self.batches if b.night})


def select(rows: Iterable[dict[str, Any]], model_name: str) -> Selection:
    """The training and audit rows of ``model_name`` among the ledger's ``rows`` (oldest first,
    as :func:`read` returns them). A text's latest label wins everywhere; a text that has an
    audit row anywhere is audit only (never trained on), so the audit part stays unseen."""
    mine = [r for r in rows if r.get("model_name") == model_name and r.get("text") is not None
            and str(r.get("label") or "").strip()]
    latest: dict[str, str] = {}
    ids_of: dict[str, dict[str, Any]] = {}
    labels_of: dict[str, set[str]] = {}
    for row in mine:
        latest[row["text"]] = str(row["label"]).strip()
        ids_of[row["text"]] = dict(row.get("ids") or {})
        labels_of.setdefault(row["text"], set()).add(str(row["label"]).strip())
    audited = {r["text"] for r in mine if r.get("audit")}
    train_texts = [t for t in latest if t not in audited]
    audit_rows = [{"text": r["text"], "label": latest[r["text"]], "weight": _weight(r),
                   "sample_id": r["sample_id"], "night": r.get("night") or "",
                   "ids": dict(r.get("ids") or {})}
                  for r in mine if r.get("audit")]
    used = {t: None for t in train_texts}
    batches: dict[str, dict[str, Any]] = {}
    counted: set[str] = set()
    for row in reversed(mine):  # the batch that gave a text its latest label counts it
        batch = batches.setdefault(row["sample_id"], {
            "data_sha256": row.get("data_sha256") or "", "night": row.get("night") or "",
            "rows": 0, "audit": 0})
        if row.get("audit"):
            batch["audit"] += 1
        elif row["text"] in used and row["text"] not in counted:
            batch["rows"] += 1
            counted.add(row["text"])
    digest = hashlib.sha256()
    for text in train_texts:
        digest.update(f"{text}\x1f{latest[text]}\x1e".encode("utf-8"))
    return Selection(
        texts=train_texts, labels=[latest[t] for t in train_texts], audit=audit_rows,
        batches=[Batch(sid, b["data_sha256"], b["night"], b["rows"], b["audit"])
                 for sid, b in sorted(batches.items(), key=lambda kv: (kv[1]["night"], kv[0]))],
        superseded=sum(1 for r in mine if r["text"] in used) - len(train_texts),
        conflicts=sum(1 for labels in labels_of.values() if len(labels) > 1),
        digest=digest.hexdigest(), ids=[ids_of[t] for t in train_texts])


def _weight(row: dict[str, Any]) -> float:
    """A row's design weight (its inverse inclusion probability); 1 when the file lacked it."""
    for value in (row.get("weight"),
                  1.0 / row["inclusion_probability"] if row.get("inclusion_probability") else None):
        if value is not None and value == value and value > 0:
            return float(value)
    return 1.0
