"""The IO manager: resolves an upstream result by its store key, whichever partition made it.

Results are written by the asset body itself, under the per-key lock (see cached.py), so that
two processes never compute one key twice; this IO manager checks the entry is in place and
hands downstream assets a lazy, checksum-verified handle on it.
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, OutputContext, ResourceDependency

from tabs_assets.defs.resources import StoreResource
from tabs_assets.graph.nodes import STUDY_ROOTS, entry_address, study_store_key
from tabs_assets.store.entries import Store
from tabs_assets.store.errors import CorruptEntryError


class MissingUpstreamError(RuntimeError):
    pass


@dataclass(frozen=True)
class StoredRef:
    """What a per-config asset outputs: the address of its (already written) store entry."""

    store_name: str
    key: str


@dataclass(frozen=True)
class StoredInput:
    """A lazy handle on an upstream entry: nothing is read until ``load()``."""

    store: Store
    asset: str
    store_name: str
    key: str
    partition_key: str

    def load(self, loader: Callable[[Path], Any]) -> Any:
        try:
            entry = self.store.verify(self.store_name, self.key)
        except FileNotFoundError:
            raise MissingUpstreamError(
                f"upstream {self.asset!r} of partition {self.partition_key!r} is not in the store "
                f"(key {self.key}); materialize it first, e.g. "
                f"dagster asset materialize --select '*{self.asset}' "
                f"--partition {self.partition_key}"
            ) from None
        except CorruptEntryError as error:
            self.store.remove(self.store_name, self.key)  # so that re-materializing rebuilds it
            raise MissingUpstreamError(
                f"{error}; re-materialize {self.asset!r} for {self.partition_key!r} to rebuild it"
            ) from None
        return loader(entry.path)


class StoreIOManager(ConfigurableIOManager):
    store: ResourceDependency[StoreResource]

    def handle_output(self, context: OutputContext, obj: StoredRef) -> None:
        if not isinstance(obj, StoredRef):
            raise TypeError(f"{context.asset_key}: expected a StoredRef, got {type(obj).__name__}")
        if not self.store.store().entry_path(obj.store_name, obj.key).is_dir():
            raise MissingUpstreamError(f"{obj.store_name}/{obj.key} was not written to the store")

    def load_input(self, context: InputContext) -> StoredInput:
        asset = context.upstream_output.asset_key.path[-1]
        partition_key = context.asset_partition_key
        registry = self.store.registry()
        if asset in STUDY_ROOTS:
            study = registry.study(partition_key)
            key = study_store_key(asset, study.study, study.member_configs(registry))
            return StoredInput(self.store.store(), asset, asset, key, partition_key)
        store_name, key = entry_address(asset, registry.config(partition_key))
        return StoredInput(self.store.store(), asset, store_name, key, partition_key)
