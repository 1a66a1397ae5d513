"""Where a step runs: stored results, planning and recording in the run's process; computing
in a Slurm job."""

from dataclasses import dataclass
from typing import Any

from tabs_assets import settings
from tabs_assets.defs.resources import FORCE_ALL
from tabs_assets.defs.tags import TRAINING_TAG
from tabs_assets.graph.nodes import NODES, entry_address, study_store_key
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import Store

SHARD_OP = "materialize_study_shard"


STUDY_ASSETS = ("study_table", "study_report")


def is_stored(registry: Registry, store: Store, name: str, partition_key: str) -> bool:
    """Whether the result of asset ``name`` for ``partition_key`` is in the store (checked as a
    cache hit checks it: the step then finds it the same way)."""
    if name in NODES:
        return store.find(*entry_address(name, registry.config(partition_key))) is not None
    record = registry.study(partition_key)
    key = study_store_key(name, record.study, record.member_configs(registry))
    return store.find(name, key) is not None


def forced_assets(run_config: dict[str, Any]) -> set[str]:
    """The run's ``resources.store.config.force`` list (assets to recompute)."""
    store = run_config.get("resources", {}).get("store", {})
    return set(store.get("config", {}).get("force", []))


@dataclass(frozen=True)
class Placement:
    job: bool  # False: in the run's process
    training: bool = False
    why: str = ""


def placement(
    step_key: str, tags: dict[str, str], partition_key: str | None, forced: set[str]
) -> Placement:
    """Where a step runs: a Slurm job only when it computes something not in the store."""
    name, _, mapping_key = step_key.partition("[")
    op = name.rsplit(".", 1)[-1]
    training = bool(tags.get(TRAINING_TAG))
    if op == SHARD_OP:
        from tabs_assets.defs.study_run import NOTHING_TO_RUN

        if mapping_key.rstrip("]") == NOTHING_TO_RUN:
            return Placement(False, why="every member of the study is in the store")
        return Placement(True, training)
    if (name not in NODES and name not in STUDY_ASSETS) or not partition_key:
        return Placement(False, why="it only plans or records stored results")
    if not ({name, FORCE_ALL} & forced):
        registry, store = Registry(settings.store_root()), Store(settings.store_root())
        if is_stored(registry, store, name, partition_key):
            return Placement(False, why="its result is in the store (cache hit)")
    return Placement(True, training)
