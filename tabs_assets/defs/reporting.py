"""Tell Dagster what the store already holds for newly registered partitions.

A config registered after another one that shares its dataset or models would show those assets
as MISSING although their results are in the store. ``report_cached`` records a runless
materialization per cached asset and partition (metadata ``cache: hit (registered)``, data
version = store key), once: a partition whose latest materialization already carries the key is
left alone.
"""

from collections.abc import Iterable
from typing import Any

from tabs_assets.defs import metadata
from tabs_assets.ui import describe

REGISTERED_STATUS = "hit (registered)"


def _latest_data_version(instance: Any, asset_key: Any, partition_key: str) -> str | None:
    from dagster import AssetRecordsFilter
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    result = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition_key]), limit=1
    )
    if not result.records:
        return None
    materialization = result.records[0].asset_materialization
    return (materialization.tags or {}).get(DATA_VERSION_TAG) if materialization else None


def report_cached(instance: Any, registry: Any, store: Any, partition_keys: Iterable[str]) -> int:
    """Report every cached asset result of ``partition_keys`` to ``instance``; returns how many
    materializations were recorded. Never raises for one bad partition (it is skipped)."""
    from dagster import AssetKey, AssetMaterialization
    from dagster._core.definitions.data_version import DATA_VERSION_TAG

    from tabs_assets.graph.nodes import NODES, entry_address

    reported = 0
    for partition_key in dict.fromkeys(partition_keys):
        try:
            config = registry.config(partition_key)
        except Exception:
            continue
        words = describe.config_in_words(config)
        for name in NODES:
            folder, key = entry_address(name, config)
            if not (store.entry_path(folder, key) / "manifest.json").is_file():
                continue
            asset_key = AssetKey(name)
            if _latest_data_version(instance, asset_key, partition_key) == key:
                continue
            entry = store.lookup(folder, key)  # verified: a corrupt entry is not reported
            if entry is None:
                continue
            instance.report_runless_asset_event(
                AssetMaterialization(
                    asset_key,
                    partition=partition_key,
                    description="already in the store when the config was registered",
                    metadata=metadata.dagster_metadata(entry, REGISTERED_STATUS, None, words),
                    tags={DATA_VERSION_TAG: key},
                )
            )
            reported += 1
    return reported
