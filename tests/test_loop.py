"""The closed loop, as a user runs it from cron: three nights of monitor.py picking rows to
label and taking them back (into the labels ledger), then train.py --with-ledger, whose new
champion is better on the following night. And the ledger under kill -9."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import ok, registry, run_script, shared
from textops.monitoring import ledger

ROOT = Path(__file__).resolve().parents[1]


def _sms_by_digits() -> tuple[pd.DataFrame, pd.DataFrame]:
    """SMS spam split on sender style: messages without a digit (to train on) and with one
    (the nights: a real shift that costs the champion ~40 points of accuracy)."""
    frame = pd.read_csv(shared("sms_spam", "sms_spam.csv"))
    frame = frame.drop_duplicates("text").reset_index(drop=True)
    frame.insert(0, "sms_id", [f"m{i}" for i in range(len(frame))])
    digits = frame["text"].str.contains(r"\d")
    return frame[~digits], frame[digits].sample(frac=1.0, random_state=0)


@pytest.mark.slow
def test_three_nights_of_labels_then_a_retrain_give_a_better_champion(project, tmp_path):
    train_rows, shifted = _sms_by_digits()
    data = tmp_path / "train.csv"
    train_rows[["text", "label"]].to_csv(data, index=False)
    ok(run_script(project, "train.py", "--data", data, "--no-leakage-check", "--no-baseline",
                  "--threshold", "0"))  # 39 spam among 4,071 messages: a weak first champion
    cuts = np.linspace(0, len(shifted), 5).astype(int)  # three labelled nights, one to judge on
    nights = [shifted.iloc[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    truth = dict(zip(shifted["sms_id"], shifted["label"]))
    for n, night in enumerate(nights[:3]):
        path = tmp_path / f"night{n}.csv"
        night[["sms_id", "text"]].to_csv(path, index=False)
        common = ["--data", path, "--id-columns", "sms_id", "--report", tmp_path / f"r{n}.json",
                  "--no-html", "--label-sample", "100"]
        first = run_script(project, "monitor.py", *common)
        assert first.returncode in (0, 1, 3), first.stderr
        written = json.loads((tmp_path / f"r{n}.json").read_text())
        to_label = Path(written["to_label"]["path"])
        if n == 0:  # spam went from 1 % of the training rows to half of the night's
            mix = written["estimated"]["class_mix"]["1"]
            assert mix["training"]["spam"] < 0.02 and mix["em"]["spam"] > 0.2, mix
            assert "bbse" in mix and mix["moved"] > 0.1  # BBSE: None when the weak champion
            # never predicted spam on its test rows (nothing to invert)
            assert "class mix moved by" in first.stdout
        sample = pd.read_csv(to_label, dtype=str, keep_default_na=False)
        sample["label"] = sample["sms_id"].map(truth)  # a person labels it where it lies
        sample.to_csv(to_label, index=False)
        back = run_script(project, "monitor.py", *common, "--labels", to_label)
        assert back.returncode in (0, 1, 3), back.stderr
    kept = ledger.read(project / "data" / "labels_ledger.db")
    assert len(kept) == 300 and len({r["sample_id"] for r in kept}) == 3
    audit = {r["text"] for r in kept if r["audit"]}
    assert 20 <= len(audit) <= 100

    retrained = ok(run_script(project, "train.py", "--data", data, "--with-ledger",
                              "--no-leakage-check", "--no-baseline", "--threshold", "0.5"))
    client = registry(project)
    v2 = client.get_model_version("textops-classifier", "2")
    assert v2.tags["textops.decision"] == "champion", v2.tags["textops.reason"]
    assert "audit rows of 3 batch(es) of the labels ledger" in v2.tags["textops.reason"]
    assert int(v2.tags["textops.audit_rows"]) == len([r for r in kept if r["audit"]])
    assert "Labels ledger: " in v2.description and "3 batch(es)" in v2.description
    run = client.get_run(v2.run_id)
    assert run.data.params["ledger.rows"] == str(300 - len(audit))
    inputs = [d.dataset.name for d in run.inputs.dataset_inputs]
    assert inputs[0] == "train.csv" and sum(n.startswith("labels-ledger/") for n in inputs) == 3
    assert "audit row(s) kept aside" in retrained.stdout + retrained.stderr

    # the fourth night, never labelled: the new champion is right far more often
    import mlflow

    uri = f"sqlite:///{project / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # this process may have run other tests: both, explicitly
    mlflow.set_registry_uri(uri)
    judged = nights[3]
    right = {}
    for version in ("1", "2"):
        model = mlflow.sklearn.load_model(f"models:/textops-classifier/{version}")
        right[version] = float(np.mean(model.predict(judged[["text"]]) == judged["label"]))
    assert right["2"] - right["1"] >= 0.10, right


def test_train_with_ledger_but_no_ledger_yet_trains_on_the_data_alone(tmp_path):
    """First night of a cron line that already says --with-ledger: no labels given back yet."""
    import config as cfg
    from textops import training

    frame = pd.DataFrame({"text": ["a b", "c d"], "label": ["x", "y"]})
    same, chosen = streamed_with_ledger(tmp_path, frame, tmp_path / "none.db")
    assert chosen is None and same.equals(frame)
    from dataclasses import replace

    from common import BadInputError
    from textops import settings

    resolved = settings.resolve(cfg.load_config({"TEXTOPS_TRAIN_WITH_LEDGER": "true"}), cfg.PROJECT_ROOT)
    assert training.make_job(resolved).ledger == cfg.resolve_path("data/labels_ledger.db")
    off = replace(resolved, monitor=replace(resolved.monitor, ledger=""))  # --ledger ''
    with pytest.raises(BadInputError, match="--with-ledger needs the labels ledger"):
        training.make_job(off)


def streamed_with_ledger(tmp_path, frame: pd.DataFrame, path, side: tuple[str, ...] = ()):
    """The rows train.py streams from ``frame`` (as a CSV) with the ledger at ``path`` of model
    "m": text, label, side columns; and what the ledger gave."""
    import numpy as np

    from textops import inputs, streamsplit, training

    csv = tmp_path / "table.csv"
    frame.to_csv(csv, index=False)
    table = streamsplit.LabelledTable(inputs.open_input(csv, "utf-8", ","), "text", "label", 0,
                                      0.2, 0.1, side)
    table, chosen = training.with_ledger(table, path, "m")
    rows = [chunk.frame("text", np.arange(len(chunk.texts))).assign(label=chunk.spellings)
            for chunk in streamsplit.chunks(table)]
    return pd.concat(rows, ignore_index=True)[["text", "label", *side]], chosen


def _row(sample: str, key: str, text: str, label: str, night: str, **extra) -> dict:
    return {"sample_id": sample, "row_key": key, "text": text, "label": label, "ids": "{}",
            "model_name": extra.pop("model", "m"), "model_version": "1", "prediction": "x",
            "probability": 0.9, "stratum": 0, "stratum_rows": 10, "inclusion_probability": 0.5,
            "weight": extra.pop("weight", 2.0), "data_sha256": f"h-{sample}", "night": night,
            "labeller": "me", "labelled_at": f"{night}T00:00:00", **extra}


def test_the_ledger_gives_training_each_texts_latest_label_and_never_its_audit_rows(tmp_path):
    path = tmp_path / "ledger.db"
    audited = next(f"k{i}" for i in range(100) if ledger.in_audit("s1", f"k{i}"))
    plain = [f"k{i}" for i in range(100) if not ledger.in_audit("s1", f"k{i}")][:3]
    ledger.append(path, [_row("s1", plain[0], "late", "x", "2026-12-01"),
                         _row("s1", plain[1], "kept", "y", "2026-12-01"),
                         _row("s1", audited, "held back", "y", "2026-12-01", weight=4.0),
                         _row("s1", plain[2], "other model", "y", "2026-12-01", model="n")])
    relabel = next(f"r{i}" for i in range(100) if not ledger.in_audit("s2", f"r{i}"))
    ledger.append(path, [_row("s2", relabel, "late", "y", "2026-12-02")])
    chosen = ledger.select(ledger.read(path), "m")
    assert dict(zip(chosen.texts, chosen.labels)) == {"late": "y", "kept": "y"}  # latest wins
    assert [r["text"] for r in chosen.audit] == ["held back"] and chosen.audit[0]["weight"] == 4.0
    assert chosen.superseded == 1 and chosen.conflicts == 1 and chosen.nights == [
        "2026-12-01", "2026-12-02"]
    assert {b.sample_id: (b.rows, b.audit) for b in chosen.batches} == {"s1": (1, 1),
                                                                        "s2": (1, 0)}
    frame = pd.DataFrame({"text": ["late", "held back", "csv only"], "label": ["x", "x", "x"]})
    merged, _ = streamed_with_ledger(tmp_path, frame, path)
    assert sorted(map(tuple, merged.to_numpy())) == [("csv only", "x"), ("kept", "y"),
                                                     ("late", "y")]
    assert chosen.digest == ledger.select(ledger.read(path), "m").digest


def test_labels_are_compared_as_the_model_spells_its_classes():
    """One spelling rule for labels given back (audit rows, --labels, labelled --data)."""
    from textops import data

    spell = data.spelled_as(["False", "True"])
    assert [spell(x) for x in ["true", "FALSE", " True ", "maybe"]] == [
        "True", "False", "True", "maybe"]


WRITER = """
import sys
from pathlib import Path
from textops.monitoring import ledger
path, start = Path(sys.argv[1]), int(sys.argv[2])
for batch in range(start, start + 10_000):
    ledger.append(path, [{**dict.fromkeys(ledger.FIELDS[:-1], None), "sample_id": f"b{batch}",
                          "row_key": str(i), "text": f"t{batch}-{i}", "label": "x",
                          "ids": "{}", "labelled_at": "2026-12-06"} for i in range(50)])
"""


def test_the_ledger_survives_kill_9_at_any_point(tmp_path):
    """Appends killed mid-transaction: every batch is there whole or not at all, and the
    ledger stays readable and appendable."""
    path = tmp_path / "ledger.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for round_ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(round_ * 10_000)],
                                env=env, cwd=ROOT)
        deadline = time.monotonic() + 60
        while not path.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)  # until it has started appending
        assert proc.poll() is None, "the writer failed"
        time.sleep(0.05 + 0.1 * round_)  # then killed at a different point each time
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    rows = ledger.read(path)
    sizes = pd.Series([r["sample_id"] for r in rows]).value_counts()
    assert len(sizes) > 6 and (sizes == 50).all()  # no half batch
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert ledger.append(path, [_row("after", "1", "t", "x", "2026-12-07")]).added == 1


def test_side_columns_come_back_from_the_ledger_rows_ids(tmp_path, caplog):
    """A model with side columns closes the loop too: monitor.py --id-columns carried them into
    the rows to label, the ledger keeps them with each row's ids, and --with-ledger trains on
    them (the latest row of a text gives them; a row without one trains as missing, counted)."""
    import json

    path = tmp_path / "ledger.db"
    keys = [f"k{i}" for i in range(200) if not ledger.in_audit("s1", f"k{i}")]
    audited = next(f"k{i}" for i in range(200) if ledger.in_audit("s1", f"k{i}"))
    ledger.append(path, [
        _row("s1", keys[0], "late", "x", "2026-12-01", ids=json.dumps({"hour": "3"})),
        _row("s1", keys[1], "no hour", "y", "2026-12-01"),
        _row("s1", audited, "held back", "y", "2026-12-01", ids=json.dumps({"hour": "9"}))])
    ledger.append(path, [_row("s2", keys[2], "late", "y", "2026-12-02",
                              ids=json.dumps({"hour": "4"}))])
    chosen = ledger.select(ledger.read(path), "m")
    assert dict(zip(chosen.texts, [i.get("hour") for i in chosen.ids])) == {"late": "4",
                                                                             "no hour": None}
    assert chosen.audit[0]["ids"] == {"hour": "9"}
    frame = pd.DataFrame({"text": ["csv row"], "label": ["x"], "hour": ["7"]})
    merged, _ = streamed_with_ledger(tmp_path, frame, path, ("hour",))
    rows = {t: h for t, h in zip(merged["text"], merged["hour"])}
    assert rows["csv row"] == "7" and rows["late"] == "4" and pd.isna(rows["no hour"])
    assert "1 of 2 row(s) have no 'hour'" in caplog.text
