"""The layout shows the architecture: a few thin entry points at the top, the libraries in one
package, short functions, imports at the top of each module (heavy optional ones excepted)."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

ENTRY_POINTS = {"train.py", "predict.py", "monitor.py", "champion.py", "demo_data.py"}
# Imported lazily on purpose (slow to import, or optional); anything else goes at the top.
LAZY_ALLOWED = ("mlflow", "catboost", "pyspark", "matplotlib", "nltk", "numba", "sqlalchemy")


def shipped() -> list[Path]:
    """The textprep package: what travels inside every logged model."""
    return sorted((PROJECT_ROOT / "textprep").rglob("*.py"))


def sources() -> list[Path]:
    return (sorted(PROJECT_ROOT.glob("*.py")) + sorted((PROJECT_ROOT / "textops").rglob("*.py"))
            + shipped())


def sources_and_benchmarks() -> list[Path]:
    return sources() + sorted((PROJECT_ROOT / "bench").glob("*.py"))


def functions(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node


def test_the_top_level_holds_the_scripts_and_at_most_eight_python_files():
    top = {p.name for p in PROJECT_ROOT.glob("*.py")}
    assert ENTRY_POINTS <= top
    assert top <= ENTRY_POINTS | {"common.py", "config.py"}, top
    assert len(top) <= 8
    packages = {p.parent.name for p in PROJECT_ROOT.glob("*/__init__.py")}
    assert packages == {"textops", "textprep"}, packages


@pytest.mark.parametrize("path", sources_and_benchmarks(),
                         ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_functions_are_short_and_mains_are_thin(path):
    for node in functions(path):
        length = node.end_lineno - node.lineno + 1
        assert length <= 60, f"{path.name}:{node.name} has {length} lines"
        if node.name == "main" and path.name in ENTRY_POINTS:
            assert length <= 60, f"{path.name}:main has {length} lines"


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_imports_are_at_the_top_except_heavy_optional_ones(path):
    for node in functions(path):
        for inner in ast.walk(node):
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom):
                names = [inner.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in LAZY_ALLOWED, (
                    f"{path.name}:{node.name} imports {name} inside a function")


@pytest.mark.parametrize("path", shipped(), ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_the_package_shipped_inside_models_imports_nothing_from_the_project(path):
    assert not _imported_roots(path) & {"config", "common", "textops"}


def _imported_roots(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                for a in n.names}
    return imported | {(n.module or "").split(".")[0] for n in ast.walk(tree)
                       if isinstance(n, ast.ImportFrom) and not n.level}


def test_the_library_imports_nothing_from_the_project_root():
    """common.py is the scripts' helper and config.py the central CONFIG (issue 28): what the
    package needs of the first (errors and exit codes, redaction, interrupts, files, timing)
    lives in textops/ itself, and the second reaches it from the entry point, resolved
    (textops.settings.resolve(config, root))."""
    root_modules = {"common", "config", "train", "predict", "monitor", "champion", "demo_data"}
    users = [str(p.relative_to(PROJECT_ROOT))
             for p in sorted((PROJECT_ROOT / "textops").rglob("*.py"))
             if _imported_roots(p) & root_modules]
    assert not users, users


def test_the_library_imports_from_any_directory_without_the_project_on_the_path(tmp_path):
    """``import textops`` needs only the package (and textprep) on the path: run from an
    unrelated folder with nothing but them importable, it loads every stage module."""
    code = ("import textops.training, textops.scoring, textops.monitoring.check, "
            "textops.settings; import sys; print(sorted(m for m in ('config', 'common') "
            "if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    (tmp_path / "site").mkdir()
    for package in ("textops", "textprep"):
        (tmp_path / "site" / package).symlink_to(PROJECT_ROOT / package)
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_every_input_is_checked_by_the_one_input_module():
    """Issue 28: predict, monitor and train check their input through inputs.open_input (a
    readable file or folder, its format, header and columns); no other module sniffs a file's
    format or reads its header itself."""
    low_level = {"detect_format", "read_header"}
    callers = [f"{p.name}:{n.lineno}" for p in sorted((PROJECT_ROOT / "textops").rglob("*.py"))
               if p.name != "inputs.py"
               for n in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
               if isinstance(n, ast.Attribute) and n.attr in low_level]
    assert not callers, callers


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_imports(path: Path, known: set[str]) -> set[str]:
    """The textops modules ``path`` imports at module level (``if`` blocks included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textops"):
            found |= {f"{node.module}.{a.name}" for a in node.names
                      if f"{node.module}.{a.name}" in known} or {node.module}
    return found - {"textops"}


def test_the_package_has_no_import_cycle():
    """Issue 28: estimation and result imported each other; Threshold now lives beside the
    reference profile. Lazy imports inside functions are not counted (heavy ones only)."""
    paths = sorted((PROJECT_ROOT / "textops").rglob("*.py"))
    known = {_module_name(p) for p in paths}
    graph = {_module_name(p): _package_imports(p, known) & known for p in paths}

    def cycle_from(start: str, node: str, trail: list[str]) -> list[str] | None:
        for following in sorted(graph.get(node, ())):
            if following == start:
                return trail + [following]
            if following not in trail and following.startswith("textops."):
                found = cycle_from(start, following, trail + [following])
                if found:
                    return found
        return None

    cycles = [c for m in sorted(graph) if (c := cycle_from(m, m, [m]))]
    assert not cycles, cycles[0]


def test_below_the_entry_points_nothing_reads_the_configuration_dict():
    """Settings are resolved once (textops.settings.resolve, called by the entry points): the
    library takes typed job objects, so no module under textops/ (but settings.py) or textprep/
    indexes a config dict or takes one."""
    readers = []
    for path in sorted((PROJECT_ROOT / "textops").rglob("*.py")) + shipped():
        if path.name == "settings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and \
                    node.value.id == "config":
                readers.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.arg) and node.arg == "config":
                readers.append(f"{path.name}:{node.lineno} (parameter)")
    assert not readers, readers


def test_saved_models_name_the_estimators_textprep_dot_class_as_the_one_module_did():
    """textprep became a package (issue 19): the classes a saved model names keep their old,
    stable name ``textprep.<Class>`` (skops files, MLmodel trusted types, pickles), so models
    saved before and after the split resolve the same way."""
    import pickle

    import textprep
    from textops.registry import TRUSTED_TYPES

    for name in ("TextColumn", "HashedTfidf", "CatBoostText", "PyfuncModel", "UnsafeModelError",
                 "SideColumns", "TextAndSide"):
        cls = getattr(textprep, name)
        assert f"{cls.__module__}.{cls.__qualname__}" == f"textprep.{name}"
    assert {t for t in TRUSTED_TYPES if t.startswith("textprep.")} == {
        "textprep.CatBoostText", "textprep.HashedTfidf", "textprep.TextColumn",
        "textprep.SideColumns", "textprep.TextAndSide"}  # the last two: side columns (issue 26)
    assert b"textprep.text" not in pickle.dumps(textprep.TextColumn(column="body"))
    assert callable(textprep._load_pyfunc)  # the python_function flavor's loader_module


def test_every_job_carries_the_column_roles_as_one_columns_object():
    """Issue 28: the input's column roles are declared once (textops.columns.Columns), resolved
    at the entry point and carried whole; no job or worker spec restates them field by field,
    and the three jobs share one shape (keyword-only, columns + tracking)."""
    import dataclasses

    from textops.batch import ScoringSpec
    from textops.columns import Columns
    from textops.monitoring.check import MonitorJob
    from textops.monitoring.stream import StreamSpec
    from textops.scoring import PredictJob
    from textops.training import TrainJob

    roles = {"text_column", "label_column", "id_columns"}
    for kind in (PredictJob, MonitorJob, TrainJob, ScoringSpec, StreamSpec):
        fields = {f.name: f.type for f in dataclasses.fields(kind)}
        assert not roles & set(fields), kind.__name__
        assert "Columns" in fields.values(), kind.__name__
    for job in (PredictJob, MonitorJob, TrainJob):
        fields = {f.name: f for f in dataclasses.fields(job)}
        assert fields["columns"].type == "Columns" and fields["tracking"].type == "Tracking"
        assert all(f.kw_only for f in fields.values()), job.__name__
    assert {f.name for f in dataclasses.fields(Columns)} == {"text", "label", "ids", "features",
                                                             "slices"}
