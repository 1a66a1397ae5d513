"""tabs_assets.settings: every TABS_ASSETS_* variable parsed in one place, one way."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tabs_assets import settings
from tabs_assets_tests.conftest import REPO

PACKAGE = Path(settings.__file__).parent
BAD_VALUES = [
    (settings.STUDY_SHARDS_ENV, "abc", "a whole number >= 1"),
    (settings.STUDY_SHARDS_ENV, "-5", "a whole number >= 1"),
    (settings.TORCH_THREADS_ENV, "0", "a whole number >= 1"),
    (settings.LOCK_TIMEOUT_ENV, "abc", "a number > 0"),
    (settings.LOCK_TIMEOUT_ENV, "-5", "a number > 0"),
    (settings.MLFLOW_LOCK_TIMEOUT_ENV, "nan", "a number > 0"),
    (settings.MAX_MEMORY_GB_ENV, "0", "a number > 0"),
    (settings.MAX_WORK_ENV, "lots", "a number > 0"),
    (settings.MAX_DATA_FILE_GB_ENV, "-1", "a number > 0"),
    (settings.ACCURACY_MARGIN_ENV, "-0.1", "a number >= 0"),
    (settings.MAX_ROUND_TRIP_ENV, "inf", "a number > 0"),
    (settings.EXECUTOR_ENV, "threads", "one of in_process, multiprocess, celery, slurm"),
    (settings.SENSOR_STUDIES_ENV, "maybe", "one of 1/true/yes/on or 0/false/no/off"),
]


@pytest.mark.parametrize(("name", "value", "expected"), BAD_VALUES)
def test_a_bad_value_is_an_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(settings.SettingError) as error:
        settings.check()
    assert str(error.value) == f"${name}={value!r}: expected {expected}"


def test_blank_means_the_default_and_good_values_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(settings.LOCK_TIMEOUT_ENV, "  ")
    monkeypatch.setenv(settings.STUDY_SHARDS_ENV, "4")
    monkeypatch.setenv(settings.SENSOR_STUDIES_ENV, "Yes")
    monkeypatch.setenv(settings.MAX_DATA_FILE_GB_ENV, "0.5")
    monkeypatch.setenv(settings.DAGSTER_UI_ENV, "https://dagster.lab/")
    settings.check()
    assert settings.lock_timeout_s() == settings.DEFAULT_LOCK_TIMEOUT_S
    assert settings.study_shards() == 4 and settings.sensor_registers_studies() is True
    assert settings.max_data_file_bytes() == 0.5e9
    assert settings.dagster_ui_url() == "https://dagster.lab"


def test_the_cli_reports_every_bad_setting_without_a_traceback(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DAGSTER_HOME": str(tmp_path / "home"),
        "TABS_ASSETS_STORE": str(tmp_path / "store"),
        settings.TORCH_THREADS_ENV: "0",
        settings.EXECUTOR_ENV: "threads",
    }
    command = [str(Path(sys.executable).parent / "tabs-assets"), "list"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"${settings.TORCH_THREADS_ENV}='0'" in done.stderr
    assert f"${settings.EXECUTOR_ENV}='threads'" in done.stderr
    assert not (tmp_path / "store").exists()  # nothing done


def _environment_reads(tree: ast.AST) -> list[str]:
    """The keys of every os.environ / os.getenv read in a module, as source text."""
    reads = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and ast.unparse(node.func) in {
            "os.environ.get",
            "os.getenv",
        }:
            reads.append(ast.unparse(node.args[0]))
        elif (
            isinstance(node, ast.Subscript)
            and isinstance(node.ctx, ast.Load)
            and ast.unparse(node.value) == "os.environ"
        ):
            reads.append(ast.unparse(node.slice))
    return reads


def test_no_module_but_settings_reads_a_tabs_assets_variable() -> None:
    declared = {value for name, value in vars(settings).items() if name.endswith("_ENV")}
    for path in PACKAGE.rglob("*.py"):
        if path.name == "settings.py" and path.parent == PACKAGE:
            continue
        for key in _environment_reads(ast.parse(path.read_text())):
            assert "TABS_ASSETS" not in key and not key.startswith("settings."), (path, key)
            assert key.strip("'\"") not in declared - {"DAGSTER_HOME"}, (path, key)


@pytest.mark.parametrize(
    "command",
    [
        ("dagster", "asset", "materialize", "--select", "*explanation_metrics"),
        ("dg", "launch", "--assets", "*explanation_metrics"),
    ],
    ids=["dagster", "dg"],
)
def test_dagster_materialize_without_dagster_home_says_what_to_set(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """A new terminal without DAGSTER_HOME: a message and exit code 2, not a 60-line
    DagsterInvalidSubsetError traceback."""
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / command[0]),
            *command[1:],
            *("-m", "tabs_assets.defs.definitions"),
            *("--partition", "quickstart-0914f6d3"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # Dagster makes its throwaway instance in the working directory
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        timeout=120,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "DAGSTER_HOME is not set" in result.stderr
    assert f"export DAGSTER_HOME={REPO}\n" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
