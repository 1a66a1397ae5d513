"""tabs_assets.cli.main: the `tabs-assets` commands."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from tabs_assets.cli.main import main
from tabs_assets.registry.records import Registry
from tabs_assets_tests.conftest import write_config
from tabs_assets_tests.studies import study_file

SMALL = {"dataset.n_points": 4000}


def test_unregistered_partition_is_a_clear_error(project_env) -> None:
    result = CliRunner().invoke(main, ["materialize", "nope-12345678"])
    assert result.exit_code == 2
    assert "'nope-12345678' is not registered" in result.output


def test_register_is_idempotent_and_show_config_names_sources(project_env) -> None:
    path = write_config(project_env["experiments"], "shown", SMALL)
    runner = CliRunner()
    first = runner.invoke(main, ["register", str(path)])
    second = runner.invoke(main, ["register", str(path)])
    assert first.exit_code == second.exit_code == 0
    assert first.output == second.output
    [key] = Registry(project_env["store"]).config_keys()
    assert DagsterInstance.get().get_dynamic_partitions("configs") == [key]
    shown = runner.invoke(main, ["show-config", str(path), "-o", "classifier.dropout=0.1"])
    lines = {line.split()[0]: line for line in shown.output.splitlines() if line[:1] != "#"}
    assert f"file: {path}" in lines["dataset.n_points"]
    assert "override (-o)" in lines["classifier.dropout"]
    assert "# default" in lines["classifier.hidden"]


def test_show_config_of_a_partition_key_keeps_its_sources_and_parses_overrides(
    project_env,
) -> None:
    """A registered config shows where each value came from at registration; -o is YAML."""
    path = write_config(project_env["experiments"], "keyed", SMALL)
    runner = CliRunner()
    assert runner.invoke(main, ["register", str(path)]).exit_code == 0
    [key] = Registry(project_env["store"]).config_keys()

    def shown(*overrides: str) -> tuple[str, dict[str, str]]:
        result = runner.invoke(main, ["show-config", key, *overrides])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        return lines[0], {line.split()[0]: line for line in lines if line[:1] != "#"}

    header, lines = shown()
    assert header == f"# partition key: {key}"
    assert lines["dataset.n_points"].split()[1:] == ["4000", "#", "file:", str(path)]
    assert lines["classifier.hidden"].endswith("# default")
    assert not any("override (-o)" in line for line in lines.values())

    header, lines = shown("-o", "classifier.hidden=[5]", "-o", "classifier.dropout=0.25")
    assert header != f"# partition key: {key}"  # another config
    assert lines["classifier.hidden"].split() == [
        "classifier.hidden",
        "[5]",
        "#",
        "override",
        "(-o)",
    ]
    assert lines["classifier.dropout"].split()[1:] == ["0.25", "#", "override", "(-o)"]
    assert lines["dataset.n_points"].endswith(f"# file: {path}")


@pytest.mark.parametrize(
    "args",
    [
        ["register", "{dir}/bad.yaml"],
        ["show-config", "{dir}/bad.yaml"],
        ["show-config", "{dir}/missing.yaml"],
        ["store", "show", "nope-12345678"],
    ],
)
def test_cli_in_a_fresh_process_prints_no_traceback(project_env, tmp_path, args) -> None:
    (tmp_path / "bad.yaml").write_text("name: a\nclassifier: {hidden: [0], dropout: .inf}\n")
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "tabs-assets")]
        + [a.replace("{dir}", str(tmp_path)) for a in args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 2, output
    assert "Traceback" not in output


def test_study_run_rejects_a_bad_shard_count_before_running(
    project_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = study_file(project_env["experiments"], "shards", [1])
    runner = CliRunner()
    zero = runner.invoke(main, ["study", "run", str(path), "--shards", "0"])
    assert zero.exit_code == 2 and "'--shards': 0 is not in the range" in zero.output
    monkeypatch.setenv("TABS_ASSETS_STUDY_SHARDS", "many")
    bad = runner.invoke(main, ["study", "run", str(path)])
    assert bad.exit_code == 2 and "$TABS_ASSETS_STUDY_SHARDS='many'" in bad.output
    assert "Traceback" not in bad.output
    assert Registry(project_env["store"]).study_keys() == []  # nothing registered or run
