"""tabs_assets.defs.assets.studies: the study assets and their staleness."""

from pathlib import Path

import pytest
from click.testing import CliRunner
from dagster import DagsterInstance

from tabs_assets.cli.main import main
from tabs_assets.defs.assets.study_report import members_changed_since_table
from tabs_assets.defs.runs import materialize_partition, run_study
from tabs_assets.registry.records import Registry
from tabs_assets_tests.studies import register_study, study_file


@pytest.mark.integration
def test_rematerializing_a_member_makes_only_its_study_stale(project_env: dict[str, Path]) -> None:
    first = register_study(project_env, study_file(project_env["experiments"], "first", [1, 2]))
    second = register_study(project_env, study_file(project_env["experiments"], "second", [1, 2]))
    registry = Registry(project_env["store"])
    instance = DagsterInstance.get()
    for key in (first, second):
        assert run_study(key).success
        assert members_changed_since_table(instance, registry.study(key)) == []

    member = registry.study(first).member_keys[0]
    forced = materialize_partition(member, "explanation_metrics", force=["explanation_metrics"])
    assert forced.success
    assert members_changed_since_table(instance, registry.study(first)) == [member]
    assert members_changed_since_table(instance, registry.study(second)) == []
    listing = CliRunner().invoke(main, ["list"])
    assert listing.exit_code == 0, listing.output
    assert f"stale: 1 member(s) re-materialized since the study table (e.g. {member})" in (
        listing.output
    )
    shown = CliRunner().invoke(main, ["study", "show", first])
    assert shown.exit_code == 0, shown.output
    assert "stale (re-materialized since the study table)" in shown.output
    assert "report: " in shown.output and "report.md" in shown.output
    # Running the study again brings it up to date (everything is a cache hit).
    assert run_study(first).success
    assert members_changed_since_table(instance, registry.study(first)) == []
