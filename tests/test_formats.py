"""One reader for every script: CSV, compressed CSV (recognised by its bytes), Parquet files and
folders of Parquet parts; a clear line for everything else. The toolkit reads what it writes."""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import re
import shutil
import zipfile

import pandas as pd
import pytest

from common import BadInputError
from conftest import assert_clean_failure, ok, run_script, shared
from textops import inputs

TWCS_COLUMNS = ["tweet_id", "inbound", "text"]


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    """twcs/sample.csv in every container textops reads, under misleading names too."""
    import pyarrow as pa

    folder = tmp_path_factory.mktemp("formats")
    raw = shared("twcs", "sample.csv").read_bytes()
    frame = pd.read_csv(shared("twcs", "sample.csv"))
    paths = {"csv": folder / "sample.csv"}
    paths["csv"].write_bytes(raw)
    paths["gzip"] = folder / "sample.data"  # no telling extension: the bytes decide
    paths["gzip"].write_bytes(gzip.compress(raw))
    paths["bz2"] = folder / "sample.csv.bz2"
    paths["bz2"].write_bytes(bz2.compress(raw))
    paths["xz"] = folder / "sample.csv.xz"
    paths["xz"].write_bytes(lzma.compress(raw))
    paths["zstd"] = folder / "sample.csv.zst"
    with pa.output_stream(str(paths["zstd"]), compression="zstd") as stream:
        stream.write(raw)
    paths["parquet"] = folder / "sample.parquet"
    frame.to_parquet(paths["parquet"])
    parts = folder / "spark_output"
    parts.mkdir()
    for i, part in enumerate((frame.iloc[:40], frame.iloc[40:])):
        part.to_parquet(parts / f"part-0000{i}-abc.snappy.parquet")
        (parts / f".part-0000{i}-abc.snappy.parquet.crc").write_bytes(b"crc")
    (parts / "_SUCCESS").write_bytes(b"")
    paths["folder"] = parts
    return paths


@pytest.mark.parametrize("kind", ["csv", "gzip", "parquet", "folder"])
def test_open_input_checks_an_input_once_and_every_read_goes_through_it(copies, kind):
    """Issue 28: one input module. open_input: readable, its format, its header, the columns
    the job needs; the Input reads whole, in chunks and hashes what was checked."""
    opened = inputs.open_input(copies[kind], "utf-8", ",", {"text": "--text-column"})
    assert opened.format.container == {"folder": "parquet"}.get(kind, kind)
    assert set(TWCS_COLUMNS) <= set(opened.header)
    whole = opened.read(TWCS_COLUMNS)
    streamed = pd.concat(opened.chunks(25, TWCS_COLUMNS))
    assert whole[TWCS_COLUMNS].reset_index(drop=True).equals(
        streamed[TWCS_COLUMNS].reset_index(drop=True))
    assert opened.sha256() == inputs.file_sha256(copies[kind])
    with pytest.raises(BadInputError, match=r"column 'body' not found .* pass --text-column NAME"):
        inputs.open_input(copies[kind], "utf-8", ",", {"body": "--text-column"})


@pytest.mark.parametrize("kind", ["csv", "gzip", "bz2", "xz", "zstd", "parquet", "folder"])
def test_every_container_reads_as_the_same_rows(copies, kind):
    path = copies[kind]
    fmt = inputs.detect_format(path, "utf-8", ",")
    assert fmt.container == {"folder": "parquet"}.get(kind, kind)
    header = inputs.read_header(path, fmt)
    assert set(TWCS_COLUMNS) <= set(header)
    chunks = list(inputs.iter_table(path, fmt, 30, TWCS_COLUMNS))
    assert [len(c) for c in chunks] == [30, 30, 30, 3]
    assert chunks[1].index[0] == 30  # row numbers continue across chunks, as with CSV
    frame = pd.concat(chunks)[TWCS_COLUMNS]
    expected = inputs.read_table(copies["csv"], usecols=TWCS_COLUMNS)[TWCS_COLUMNS]
    assert frame["text"].tolist() == expected["text"].tolist()
    assert frame["inbound"].tolist() == expected["inbound"].tolist()  # booleans spelled True
    assert frame["tweet_id"].astype(str).tolist() == expected["tweet_id"].tolist()


def test_the_hash_is_of_the_bytes_as_stored(copies):
    import hashlib

    csv = copies["csv"]
    assert inputs.file_sha256(csv) == hashlib.sha256(csv.read_bytes()).hexdigest()
    assert inputs.file_sha256(copies["folder"]) == inputs.file_sha256(copies["folder"])
    assert inputs.file_sha256(copies["folder"]) != inputs.file_sha256(copies["parquet"])


@pytest.mark.parametrize("name, content, words", [
    ("garbage.gz", b"\x1f\x8b" + os.urandom(300), "cannot be decompressed"),
    ("book.xlsx", "ZIP", "ZIP archive (an .xlsx workbook?)"),
    ("picture.csv", b"\x89PNG\r\n\x1a\n" + b"0" * 100, "PNG image"),
    ("truncated.parquet", "TRUNCATED", "not a readable Parquet file"),
    ("utf16.csv", "text,id\nhello,1\n".encode("utf-16-le"), "--encoding utf-16-le"),
])
def test_what_it_cannot_read_is_named(copies, tmp_path, name, content, words):
    path = tmp_path / name
    if content == "ZIP":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("xl/workbook.xml", "<workbook/>")
    elif content == "TRUNCATED":
        path.write_bytes(copies["parquet"].read_bytes()[:200])
    else:
        path.write_bytes(content)
    with pytest.raises(BadInputError, match=re.escape(words)):
        fmt = inputs.detect_format(path, "utf-8", ",")
        inputs.read_header(path, fmt)


def test_a_spark_folder_without_success_did_not_commit(copies, tmp_path):
    folder = tmp_path / "uncommitted"
    shutil.copytree(copies["folder"], folder)
    (folder / "_SUCCESS").unlink()
    with pytest.raises(BadInputError, match="no _SUCCESS file"):
        inputs.check_readable_file(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BadInputError, match="without data files"):
        inputs.check_readable_file(empty)
    assert inputs.parquet_parts(copies["folder"])[0].name.startswith("part-00000")


# ------------------------------------------------------------------------------------------
# End to end: each script reads what predict.py writes
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, copies):
    from conftest import copy_project

    root = copy_project(tmp_path_factory.mktemp("fmt") / "project")
    ok(run_script(root, "train.py", "--data", copies["csv"], "--label-column", "inbound",
                  "--threshold", "0.5", "--no-leakage-check", "--no-baseline"))
    return root


@pytest.mark.slow
def test_predict_output_in_every_format_is_read_back_by_monitor_and_predict(trained, copies,
                                                                          tmp_path):
    reports = {}
    for name in ("scored.csv", "scored.csv.gz", "scored.parquet"):
        out = tmp_path / name
        ok(run_script(trained, "predict.py", "--data", copies["csv"], "--output", out,
                      "--id-columns", "tweet_id,text,inbound", "--proba", "all"))
        report = tmp_path / f"{name}.json"
        checked = run_script(trained, "monitor.py", "--data", out, "--label-column", "inbound",
                             "--report", report, "--no-html", "--to-label", "")
        assert checked.returncode in (0, 1, 3), checked.stderr
        found = json.loads(report.read_text())
        reports[name] = {k: found[k] for k in ("status", "alerts", "performance", "estimated")}
        if name != "scored.csv":  # predict.py reads its own compressed and Parquet output
            again = tmp_path / f"again-{name}.csv"
            ok(run_script(trained, "predict.py", "--data", out, "--output", again,
                          "--id-columns", "tweet_id"))
            assert pd.read_csv(again, dtype=str)["tweet_id"].tolist() == \
                pd.read_csv(copies["csv"], dtype=str)["tweet_id"].tolist()
    assert reports["scored.csv.gz"] == reports["scored.csv"]
    # Parquet keeps probabilities as float64, CSV at 6 decimals: the same report to that precision
    # (a figure computed from them may then differ by one in its 6th decimal)
    parquet, csv = _flat(reports["scored.parquet"]), _flat(reports["scored.csv"])
    assert parquet.keys() == csv.keys()
    for key, value in csv.items():
        if isinstance(value, float):
            assert parquet[key] == pytest.approx(value, abs=2e-6), key
        else:
            assert parquet[key] == value, key
    direct = run_script(trained, "monitor.py", "--data", copies["folder"], "--label-column",
                        "inbound", "--report", tmp_path / "folder.json", "--no-html",
                        "--to-label", "")  # a Spark job's committed folder, read directly
    assert direct.returncode in (0, 1, 3), direct.stderr


def _flat(value, path: str = "") -> dict:
    """A nested report as {dotted path: leaf value}."""
    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _flat(item, f"{path}.{key}").items()}
    if isinstance(value, list):
        return {k: v for i, item in enumerate(value) for k, v in _flat(item, f"{path}[{i}]").items()}
    return {path: value}


@pytest.mark.slow
def test_train_from_parquet_gives_the_split_and_model_of_the_same_rows_in_csv(trained, copies):
    from conftest import registry

    ok(run_script(trained, "train.py", "--data", copies["parquet"], "--label-column", "inbound",
                  "--threshold", "0.5", "--no-leakage-check", "--no-baseline", "--model-name",
                  "from-parquet"))
    client = registry(trained)
    runs = {name: client.get_run(client.get_model_version(name, "1").run_id)
            for name in ("textops-classifier", "from-parquet")}
    params = [{k: v for k, v in r.data.params.items() if k.startswith("data.rows")}
              for r in runs.values()]
    assert params[0] == params[1] and params[0]["data.rows_test"]
    scores = [r.data.metrics["macro_f1"] for r in runs.values()]
    assert scores[0] == pytest.approx(scores[1])


@pytest.mark.slow
@pytest.mark.parametrize("case, script, words", [
    ("uncommitted Spark folder", "monitor.py", "no _SUCCESS"),
    ("xlsx", "train.py", "ZIP archive"),
    ("gzip of garbage", "predict.py", "cannot be decompressed"),
    ("truncated Parquet", "train.py", "not a readable")])
def test_bad_containers_are_one_line_exit_2(trained, copies, tmp_path, case, script, words):
    """Rows of the bad-input table (every script reads through the same reader)."""
    path = tmp_path / "input"
    if case == "uncommitted Spark folder":
        shutil.copytree(copies["folder"], path)
        (path / "_SUCCESS").unlink()
    elif case == "xlsx":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("xl/workbook.xml", "<workbook/>")
    elif case == "gzip of garbage":
        path.write_bytes(b"\x1f\x8b" + os.urandom(300))
    else:
        path.write_bytes(copies["parquet"].read_bytes()[:200])
    extra = {"train.py": ["--label-column", "inbound"],
             "predict.py": ["--output", str(tmp_path / "out.csv")],
             "monitor.py": ["--report", str(tmp_path / "r.json"), "--no-html"]}[script]
    result = run_script(trained, script, "--data", path, *extra)
    assert_clean_failure(result, 2, words)
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "r.json").exists()


def test_an_input_that_changes_while_it_is_read_is_refused(tmp_path, copies):
    """Issue 27: a cron export still being written. What was opened is fingerprinted (size and
    modification time of the file, or of every part of a folder); after reading, a change is
    exit 2 naming it, instead of a model, report or output built from a torn file."""
    path = tmp_path / "growing.csv"
    path.write_text("text,label\na,x\n", encoding="utf-8")
    opened = inputs.open_input(path, "utf-8", ",")
    opened.require_unchanged()  # nothing happened: fine
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("b,y\n")
    with pytest.raises(BadInputError, match=r"--data .*growing.csv changed while it was being "
                                            r"read \(15 -> 19 bytes"):
        opened.require_unchanged()
    folder = tmp_path / "parts"
    shutil.copytree(copies["folder"], folder)
    opened = inputs.open_input(folder, "utf-8", ",")
    shutil.copy(next(folder.glob("part-00001*")), folder / "part-00002-abc.snappy.parquet")
    with pytest.raises(BadInputError, match="changed while it was being read"):
        opened.require_unchanged()
