"""tabs_assets.cli.study_status: `tabs-assets study list` and `study show`."""

from pathlib import Path

from click.testing import CliRunner

from tabs_assets.cli.main import main
from tabs_assets.registry.records import Registry
from tabs_assets_tests.studies import register_study, study_file


def test_study_list_and_show(project_env: dict[str, Path]) -> None:
    """`study list`: members done / total; `study show KEY`: each member's state and labels."""
    key = register_study(project_env, study_file(project_env["experiments"], "listed", [1, 2]))
    runner = CliRunner()
    listed = runner.invoke(main, ["study", "list"])
    assert listed.exit_code == 0, listed.output
    assert key in listed.output
    assert "0/2 members with explanation_metrics, report not made" in listed.output
    shown = runner.invoke(main, ["study", "show", key])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert lines[0] == f"study {key} (listed): 0/2 members with explanation_metrics"
    assert lines[1] == f"report: not made yet (tabs-assets study run {key})"
    members = Registry(project_env["store"]).study(key).member_keys
    for member in members:
        [line] = [line for line in lines if member in line]
        assert "missing" in line and "seed=" in line
    unknown = runner.invoke(main, ["study", "show", "nope"])
    assert unknown.exit_code == 2 and "nope is not a registered study" in unknown.output
