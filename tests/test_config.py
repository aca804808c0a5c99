"""Configuration: every setting declared once in CONFIG; defaults < environment (.env) < flags;
the environment names, .env.example, the settings table and --help are derived from it."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import common
import config as cfg
from textops import training
from conftest import PROJECT_ROOT


def test_defaults_are_a_private_copy():
    first = cfg.load_config({})
    first["data"]["text_column"] = "changed"
    assert cfg.load_config({})["data"]["text_column"] == "text"
    assert cfg.CONFIG["data"]["text_column"].default == "text"


def test_each_setting_has_a_derived_variable_and_old_names_still_work():
    assert cfg.env_name("tfidf", "ngram_max") == "TEXTOPS_TFIDF_NGRAM_MAX"
    assert cfg.env_name("data", "text_column") == "TEXTOPS_DATA_TEXT_COLUMN"
    assert cfg.env_name("mlflow", "tracking_uri") == "MLFLOW_TRACKING_URI"  # MLflow's own
    assert cfg.load_config({"TEXTOPS_DATA_TEXT_COLUMN": "body"})["data"]["text_column"] == "body"
    assert cfg.load_config({"TEXTOPS_TEXT_COLUMN": "body"})["data"]["text_column"] == "body"
    both = {"TEXTOPS_TEXT_COLUMN": "old", "TEXTOPS_DATA_TEXT_COLUMN": "new"}
    assert cfg.load_config(both)["data"]["text_column"] == "new"  # the derived name wins
    assert cfg.load_config({"TEXTOPS_SPARK_MASTER": "yarn"})["predict"]["spark_master"] == "yarn"
    assert cfg.load_config({"TEXTOPS_DELIMITER": "\\t"})["data"]["delimiter"] == "\t"


def test_names_never_collide_and_every_alias_names_a_setting():
    derived = [cfg.env_name(s, k) for s, k, _ in cfg.settings()]
    assert len(derived) == len(set(derived))
    assert not set(derived) & set(cfg.ENV_ALIASES)
    for old, target in cfg.ENV_ALIASES.items():
        section, key = target.split(".")
        assert key in cfg.CONFIG[section], old
    for section, key, setting in cfg.settings():
        assert setting.help, f"{section}.{key} has no help"
        assert setting.choices is None or setting.default in setting.choices


def test_environment_overrides_are_typed():
    config = cfg.load_config({
        "TEXTOPS_TEST_SIZE": "0.3",
        "TEXTOPS_RANDOM_SEED": "7",
        "TEXTOPS_MASK_URLS": "yes",
        "TEXTOPS_LABEL_COLUMN": "inbound",
        "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        "TEXTOPS_STOPWORDS": "  ",  # blank values are ignored
    })
    assert config["data"]["test_size"] == 0.3
    assert config["data"]["random_seed"] == 7
    assert config["preprocessing"]["mask_urls"] is True
    assert config["data"]["label_column"] == "inbound"
    assert config["mlflow"]["tracking_uri"] == "http://127.0.0.1:5000"
    assert config["preprocessing"]["stopwords"] == "english"


def test_bad_environment_value_names_the_variable():
    with pytest.raises(cfg.ConfigError, match="TEXTOPS_RANDOM_SEED"):
        cfg.load_config({"TEXTOPS_RANDOM_SEED": "seven"})


def test_a_value_outside_the_choices_is_refused():
    with pytest.raises(cfg.ConfigError, match="TEXTOPS_PREDICT_PROBA"):
        cfg.load_config({"TEXTOPS_PREDICT_PROBA": "most"})


def test_relative_paths_resolve_against_project_root_not_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cfg.resolve_path("mlflow.db") == PROJECT_ROOT / "mlflow.db"
    assert cfg.resolve_path(tmp_path / "x.csv") == tmp_path / "x.csv"


def test_env_example_and_the_settings_table_are_generated_from_config():
    fix = "run: python config.py --write-docs"
    assert (PROJECT_ROOT / ".env.example").read_text() == cfg.env_example(), fix
    doc = cfg.DOCS.read_text()
    assert cfg.configuration_doc(doc) == doc, fix
    for old in cfg.ENV_ALIASES:
        assert old in doc
    assert "docs/configuration.md" in (PROJECT_ROOT / "README.md").read_text()


def test_readme_exit_code_table_is_the_code_table():
    readme = (PROJECT_ROOT / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|", readme, flags=re.M))
    assert {int(k) for k in rows} == {int(c) for c in common.EXIT_CODES}
    for code, (meaning, _) in common.EXIT_CODES.items():
        assert rows[str(int(code))] == meaning


def test_flags_override_the_configuration_one_way(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = cfg.load_config({"TEXTOPS_RANDOM_SEED": "3"})
    parser = common.make_parser("train", config, "test")
    args = parser.parse_args(["--seed", "7", "--no-baseline", "--data", "x.csv",
                              "--delimiter", "tab", "--metric", "accuracy"])
    common.apply_flags(config, args)
    assert config["data"]["random_seed"] == 7
    assert config["train"]["baseline"] is False
    assert config["train"]["data"] == str(tmp_path / "x.csv")  # flags: relative to the cwd
    uri = parser.parse_args(["--data", "hdfs://nn:8020/tables/tweets"])
    assert vars(uri)["train.data"] == "hdfs://nn:8020/tables/tweets"  # a URI stays a URI
    predict = common.make_parser("predict", cfg.load_config({"TEXTOPS_PREDICT_OUTPUT": "s3a://b/o"}), "t")
    given = vars(predict.parse_args(["--data", "file:///data/in.parquet"]))
    assert (given["predict.data"], given["predict.output"]) == ("file:///data/in.parquet", "s3a://b/o")
    assert config["data"]["delimiter"] == "\t"
    assert config["promotion"]["metric"] == "accuracy"
    untouched = cfg.load_config({"TEXTOPS_RANDOM_SEED": "3"})
    common.apply_flags(untouched, parser.parse_args([]))
    assert untouched["data"]["random_seed"] == 3  # no flag: the environment's value
    with pytest.raises(SystemExit):
        parser.parse_args(["--metric", "recall"])


def test_dotenv_never_overrides_the_real_environment(project):
    (project / ".env").write_text("TEXTOPS_LABEL_COLUMN=from_dotenv\nTEXTOPS_TEXT_COLUMN=body\n")
    code = ("import config, json; config.load_dotenv_file(); c = config.load_config(); "
            "print(c['data']['label_column'], c['data']['text_column'])")
    env = {"TEXTOPS_LABEL_COLUMN": "from_env", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=project, env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out == ["from_env", "body"]


def test_importing_the_modules_has_no_side_effects(project):
    before = sorted(p.name for p in project.iterdir())
    code = ("import config, common, textprep, textops.training, textops.scoring, "
            "textops.monitoring.check; import mlflow; print('ok')")
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, capture_output=True)
    after = sorted(p.name for p in project.iterdir() if p.name != "__pycache__")
    assert after == before  # no logs/, mlflow.db, mlartifacts/ or data/ created


@pytest.mark.parametrize("script", ["train", "predict", "monitor", "champion"])
def test_help_lists_every_flag_with_its_variables_and_the_exit_codes(script):
    out = subprocess.run([sys.executable, str(PROJECT_ROOT / f"{script}.py"), "--help"],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "300"}).stdout
    assert "exit codes:" in out and "130 interrupted" in out
    for section, key, setting in cfg.settings():
        if script in cfg.flag_scripts(section, setting):
            assert setting.flag in out, (script, setting.flag)
            assert cfg.env_name(section, key) in out, (script, cfg.env_name(section, key))


def test_a_sigterm_swallowed_by_a_finalizer_is_quiet_and_still_stops_the_job(monkeypatch, capsys):
    """A signal can land while Python runs a finalizer, where an exception is printed and
    ignored; train.py must neither print that traceback nor go on to register and promote."""
    from textops import interrupts

    monkeypatch.setattr(interrupts, "_SIGNALS_RECEIVED", [])
    monkeypatch.setattr(sys, "unraisablehook", common._quiet_swallowed_interrupt)
    common.raise_if_interrupted()  # no signal yet: nothing happens

    class Finalized:
        def __del__(self):
            common._raise_interrupted(15, None)

    Finalized()  # the exception raised in __del__ is swallowed by Python
    assert "Traceback" not in capsys.readouterr().err
    with pytest.raises(common.Interrupted, match="signal 15"):
        common.raise_if_interrupted()


def test_a_signal_surfacing_as_another_error_ends_the_job_interrupted(monkeypatch, capsys):
    """SIGTERM landing inside compiled code comes back as that code's own error (numba:
    "SystemError: ... returned a result with an exception set"); once a signal was received,
    run_main reports the job interrupted (exit 130), not an internal error (70)."""
    from textops import interrupts

    monkeypatch.setattr(interrupts, "_SIGNALS_RECEIVED", [])

    def bug(_argv):
        raise SystemError("a genuine bug")

    assert common.run_main("train", bug, []) == 70
    assert "internal error" in capsys.readouterr().err

    def interrupted_in_numba(_argv):
        try:
            common._raise_interrupted(15, None)
        except common.Interrupted as exc:
            raise SystemError("CPUDispatcher(<function _nb_count>) returned a result with an "
                              "exception set") from exc

    assert common.run_main("train", interrupted_in_numba, []) == 130
    err = capsys.readouterr().err
    assert err == "train: interrupted\n"


def test_every_setting_is_a_typed_field_of_its_sections_settings_object():
    """The typed sections are generated from CONFIG (textops/sections.py, by config.py
    --write-docs): the file in the tree is what CONFIG generates today, so a setting is declared
    once. Each field has CONFIG's type (path settings: a resolved Path, None when empty) and no
    default of its own; the library reads typed, frozen objects, never the dict."""
    import dataclasses

    from textops import settings

    assert cfg.SECTIONS_MODULE.read_text(encoding="utf-8") == cfg.sections_module(), \
        "textops/sections.py is out of step with CONFIG: run python config.py --write-docs"
    assert set(settings.SECTIONS) == set(cfg.CONFIG)
    for section, kind in settings.SECTIONS.items():
        declared = {key: cfg.annotation(s) for key, s in cfg.CONFIG[section].items()}
        fields = {f.name: f.type for f in dataclasses.fields(kind)}
        assert fields == declared, section
        assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(kind))
    assert settings.THRESHOLD_SETTINGS == cfg.ALERT_RULES
    assert settings.Thresholds.defaults().to_dict() == {
        key: cfg.CONFIG["monitor"][key].default for key in cfg.ALERT_RULES}
    resolved = settings.resolve(cfg.load_config({"TEXTOPS_TFIDF_MAX_DF": "1",
                                                 "TEXTOPS_MONITOR_LEDGER": "~/ledger.db"}),
                                Path("/srv/project"))
    assert resolved.tfidf.max_df == 1.0 and isinstance(resolved.tfidf.max_df, float)
    assert resolved.train.data == "data/demo/train.csv"  # may be a URI: the job resolves it
    assert training.make_job(resolved).data_path == Path("/srv/project/data/demo/train.csv")
    assert resolved.monitor.ledger == Path("~/ledger.db").expanduser()
    assert resolved.monitor.to_label == Path("/srv/project/reports/to_label")
    assert resolved.predict.data == "data/demo/recent.csv"  # may be a URI: the job resolves it
    assert resolved.path(resolved.predict.data) == Path("/srv/project/data/demo/recent.csv")
    with pytest.raises(dataclasses.FrozenInstanceError):
        resolved.tfidf.max_df = 0.5


def test_the_demo_corpus_builder_runs_on_the_settings_start_returns(tmp_path, monkeypatch):
    """demo_data.py (the README's first command) takes the resolved settings from common.start
    like the three scripts; run in-process to its end: both files written, labelled."""
    import demo_data

    import logging

    monkeypatch.setenv("TEXTOPS_LOGGING_DIR", str(tmp_path / "logs"))
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert demo_data.main(["--out-dir", str(tmp_path), "--quiet"]) == 0
    finally:  # start() set up the script's logging: give this process its own back
        for handler in root.handlers[:]:
            root.removeHandler(handler)
            if handler not in handlers:
                handler.close()
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
        logging.captureWarnings(False)
    train = (tmp_path / "train.csv").read_text(encoding="utf-8").splitlines()[0]
    assert train == "text,label" and (tmp_path / "recent.csv").exists()
