"""Configuration: defaults < environment (.env) < flags; paths hang off the project root."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

import config as cfg
from conftest import PROJECT_ROOT


def test_defaults_are_a_private_copy():
    first = cfg.load_config({})
    first["data"]["text_column"] = "changed"
    assert cfg.load_config({})["data"]["text_column"] == "text"
    assert cfg.CONFIG["data"]["text_column"] == "text"


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


def test_every_env_var_maps_to_a_config_key():
    for name, (section, key, _) in cfg.ENV_VARS.items():
        assert key in cfg.CONFIG[section], name


def test_relative_paths_resolve_against_project_root_not_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cfg.resolve_path("mlflow.db") == PROJECT_ROOT / "mlflow.db"
    assert cfg.resolve_path(tmp_path / "x.csv") == tmp_path / "x.csv"


def test_env_example_and_readme_document_every_variable():
    example = (PROJECT_ROOT / ".env.example").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.M))
    missing = set(cfg.ENV_VARS) - documented
    assert not missing, f".env.example lacks {sorted(missing)}"
    missing_readme = {name for name in cfg.ENV_VARS if name not in readme}
    assert not missing_readme, f"README lacks {sorted(missing_readme)}"


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
    code = ("import config, common, dataio, modeling, textprep, tracking; import mlflow; "
            "print(mlflow.get_tracking_uri() if False else 'ok')")
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, capture_output=True)
    after = sorted(p.name for p in project.iterdir() if p.name != "__pycache__")
    assert after == before  # no logs/, mlflow.db, mlartifacts/ or data/ created


@pytest.mark.parametrize("script", ["train.py", "predict.py", "monitor.py"])
def test_help_lists_flags_env_vars_and_exit_codes(script):
    out = subprocess.run([sys.executable, str(PROJECT_ROOT / script), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for needle in ("--text-column", "--model-name", "--data", "TEXTOPS_MODEL_NAME",
                   "MLFLOW_TRACKING_URI", "exit codes:"):
        assert needle in out, (script, needle)
