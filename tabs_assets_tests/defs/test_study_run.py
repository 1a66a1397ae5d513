"""tabs_assets.defs.study_run: a study's members in one run, each reported as its own partition."""

import shutil
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance

from tabs_assets.config.loading import resolve_config
from tabs_assets.defs.runs import materialize_partition, run_study
from tabs_assets.defs.study_run import member_plan, shard_members
from tabs_assets.graph.nodes import entry_address, study_store_key
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store
from tabs_assets_tests.conftest import FAST_OVERRIDES, REPO
from tabs_assets_tests.services import launch_and_wait, service_env, services, start_dagster
from tabs_assets_tests.studies import register_study, study_file

pytestmark = pytest.mark.filterwarnings(
    "ignore:Using variable_values and operation_name:DeprecationWarning"
)


def materialized_partitions(instance: DagsterInstance, asset: str) -> set[str]:
    return set(instance.get_materialized_partitions(AssetKey(asset)))


def test_member_plan_follows_what_a_config_uses(fast_config: Any) -> None:
    assert member_plan("explanation_metrics", fast_config) == [
        "dataset",
        "classifier",
        "generative_model",
        "counterfactual_paths",
        "reference_density",
        "explanation_metrics",
    ]
    overrides = {"name": "w", **FAST_OVERRIDES, "explainer.method": "wachter"}
    wachter = resolve_config([], overrides).config
    assert "generative_model" not in member_plan("explanation_metrics", wachter)
    assert member_plan("counterfactual_paths", wachter) == [
        "dataset",
        "classifier",
        "counterfactual_paths",
    ]


@pytest.mark.integration
def test_study_run_reports_members_and_caches_them(project_env: dict[str, Path]) -> None:
    path = study_file(project_env["experiments"], "shared", [1, 2, 3])
    key = register_study(project_env, path)
    registry = Registry(project_env["store"])
    record = registry.study(key)
    # Members that share their models stay together when split into shards.
    shards = shard_members(registry, record.member_keys, 2, "explanation_metrics")
    assert sorted(k for shard in shards for k in shard) == sorted(record.member_keys)

    result = run_study(key)
    assert result.success
    instance = DagsterInstance.get()
    # Every member's results are materializations of its own partition, with the store key as
    # data version, although the study ran them in one step.
    assert materialized_partitions(instance, "explanation_metrics") == set(record.member_keys)
    assert materialized_partitions(instance, "counterfactual_paths") == set(record.member_keys)
    event = instance.get_latest_materialization_event(AssetKey("counterfactual_paths"))
    member = event.asset_materialization.partition
    store = Store(project_env["store"])
    _, paths_key = entry_address("counterfactual_paths", registry.config(member))
    assert event.asset_materialization.tags["dagster/data_version"] == paths_key
    # The shared classifier was trained once for three members.
    assert len([e for e in store.entries() if e.asset == "classifier"]) == 1
    statuses = {
        e.materialization.asset_key.path[-1]: e.materialization.metadata["cache"].value
        for e in result.get_asset_materialization_events()
        if e.materialization.partition == key
    }
    assert statuses == {"study_members": "miss", "study_table": "miss", "study_report": "miss"}

    again = run_study(key)
    assert again.success
    member_events = [
        e for e in again.get_asset_materialization_events() if e.materialization.partition != key
    ]
    assert member_events == []  # nothing of a member ran again
    report_key = study_store_key("study_report", record.study, record.member_configs(registry))
    report = (store.entry_path("study_report", report_key) / "report.md").read_text()
    assert "# Study report: shared" in report and "3 member configs" in report


@pytest.mark.integration
def test_study_launched_over_graphql_is_one_run(project_env: dict[str, Path], tmp_path) -> None:
    shutil.copyfile(REPO / "dagster.yaml", project_env["dagster_home"] / "dagster.yaml")
    key = register_study(project_env, study_file(project_env["experiments"], "served", [1, 2]))
    env = service_env({"TABS_ASSETS_EXECUTOR": "in_process"}, drop=["MLFLOW_TRACKING_URI"])
    with services(tmp_path / "logs", env) as stack:
        client = start_dagster(stack)
        run_id = launch_and_wait(client, stack, key, job="study")
    instance = DagsterInstance.get()
    registry = Registry(project_env["store"])
    record = registry.study(key)
    assert materialized_partitions(instance, "explanation_metrics") == set(record.member_keys)
    for asset in ("study_members", "study_table", "study_report"):
        assert materialized_partitions(instance, asset) == {key}
    run_ids = {
        e.run_id
        for asset in ("explanation_metrics", "study_report")
        for e in instance.fetch_materializations(AssetKey(asset), limit=10).records
    }
    assert run_ids == {run_id}  # members and report came from the one launched run
    store = Store(project_env["store"])
    members = record.member_configs(registry)
    for asset in ("study_table", "study_report"):
        assert store.lookup(asset, study_store_key(asset, record.study, members)) is not None


def stale_statuses(instance: DagsterInstance, partitions: dict[str, list[str]]) -> dict:
    """(asset, partition) -> Dagster's stale status and causes, as its UI and GraphQL resolve
    them (the same resolver, in process)."""
    from dagster._utils.test.data_versions import get_stale_status_resolver

    from tabs_assets.defs.definitions import CONFIG_ASSETS

    resolver = get_stale_status_resolver(instance, CONFIG_ASSETS)
    return {
        (asset, key): (
            resolver.get_status(AssetKey(asset), key).value,
            tuple(cause.reason for cause in resolver.get_stale_causes(AssetKey(asset), key)),
        )
        for key, assets in partitions.items()
        for asset in assets
    }


@pytest.mark.integration
def test_after_a_study_run_every_member_is_fresh_with_its_checks(
    project_env: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """As after `tabs-assets materialize` of each member: every asset it uses is materialized
    for its partition with Dagster's provenance (so FRESH) and its checks are recorded."""
    from dagster import AssetCheckKey
    from dagster._core.event_api import PartitionKeyFilter

    from tabs_assets.defs.checks import CHECKS
    from tabs_assets.defs.event_log import BatchingSqliteEventLogStorage

    # The instance settings users get (dagster.yaml): member events written in batches.
    shutil.copyfile(REPO / "dagster.yaml", project_env["dagster_home"] / "dagster.yaml")
    assert isinstance(DagsterInstance.get().event_log_storage, BatchingSqliteEventLogStorage)
    batches: list[int] = []
    store_batch = BatchingSqliteEventLogStorage.store_event_batch

    def counted(storage: Any, events: Any) -> None:
        batches.append(len(events))
        store_batch(storage, events)

    monkeypatch.setattr(BatchingSqliteEventLogStorage, "store_event_batch", counted)
    key = register_study(project_env, study_file(project_env["experiments"], "fresh", [1, 2, 3]))
    registry = Registry(project_env["store"])
    members = registry.study(key).member_keys
    assert run_study(key).success
    # Per asset, its members' materializations and check results: one transaction each.
    assert max(batches) >= 2 * len(members), batches
    instance = DagsterInstance.get()
    plans = {m: member_plan("explanation_metrics", registry.config(m)) for m in members}
    statuses = stale_statuses(instance, plans)
    assert set(statuses.values()) == {("FRESH", ())}, statuses
    for member, assets in plans.items():
        for asset in assets:  # shared results too: reported for every member that uses them
            assert member in materialized_partitions(instance, asset)
        checks = [AssetCheckKey(AssetKey(c.asset), c.name) for c in CHECKS if c.asset in assets]
        latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            checks, partition_filter=PartitionKeyFilter(key=member)
        )
        assert {k: r.status.value for k, r in latest.items()} == dict.fromkeys(checks, "SUCCEEDED")

    # A member's upstream re-materialized with another data version makes it stale, as in any
    # run: the provenance points at real events.
    member = members[0]
    forced = materialize_partition(member, "dataset", force=["dataset"])
    assert forced.success
    after = stale_statuses(instance, {member: ["classifier"]})
    assert after[("classifier", member)][0] == "FRESH"  # same data version: the same result
