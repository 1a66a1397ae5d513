"""A per-config asset's compute function, its contract: it gets its config, its upstream results
(loaded on first use, shared within the process) and a log; it returns a Computed result."""

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tabs_assets.defs.io_manager import StoredInput


@dataclass
class Computed:
    """What a compute function returns: a payload with ``save(dir)`` and its report."""

    payload: Any
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    tables: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # extra files, e.g. figures
    previews: list[str] = field(default_factory=list)  # names of PNGs shown in the Dagster UI

    def save(self, directory: Path) -> None:
        self.payload.save(directory)
        for name, data in self.files.items():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_bytes(data)


class LoadedResults:
    """Upstream results loaded in this process, by store address (least recently used first out).

    Entries are immutable and content-addressed, so a loaded payload can serve every later
    step of the process: a study's members that share a dataset or a model load it once.
    """

    def __init__(self, capacity: int = 32) -> None:
        self.capacity = capacity
        self._items: OrderedDict[tuple[str, str, str], Any] = OrderedDict()

    def get(self, handle: StoredInput, loader: Callable[[Path], Any]) -> Any:
        address = (str(handle.store.root), handle.store_name, handle.key)
        if address in self._items:
            self._items.move_to_end(address)
            return self._items[address]
        value = handle.load(loader)
        self._items[address] = value
        if len(self._items) > self.capacity:
            self._items.popitem(last=False)
        return value


LOADED = LoadedResults()  # one per process


class Inputs:
    """The upstream results of one asset, loaded on first use only."""

    def __init__(
        self,
        handles: Mapping[str, StoredInput],
        loaders: Mapping[str, Callable],
        loaded: LoadedResults = LOADED,
    ) -> None:
        self._handles = handles
        self._loaders = loaders
        self._loaded = loaded

    def __getitem__(self, name: str) -> Any:
        return self._loaded.get(self._handles[name], self._loaders[name])

    def __contains__(self, name: str) -> bool:
        return name in self._handles


class RunLog(Protocol):
    """Where compute functions report progress: Dagster's step log, or any ``logging.Logger``."""

    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...
