"""The baseline of benchmarks/cached_rerun.py: the same steps, partitions and executor as
tabs_assets, each step doing nothing. Only Dagster's own per-run and per-step cost remains."""

import os

from dagster import AssetExecutionContext, Definitions, MaterializeResult, asset

from tabs_assets.orchestration.executors import selected_executor
from tabs_assets.orchestration.graph import NODES
from tabs_assets.orchestration.partitions import config_partitions


def _noop_asset(name: str, deps: tuple[str, ...]):
    @asset(name=name, deps=list(deps), partitions_def=config_partitions)
    def _asset(context: AssetExecutionContext) -> MaterializeResult:
        return MaterializeResult(metadata={"cache": "hit"})

    return _asset


def trivial_assets(names: list[str]) -> list:
    return [_noop_asset(n, tuple(d for d in NODES[n].inputs if d in names)) for n in names]


# The benchmark passes the product's asset names, so both graphs have the same steps.
defs = Definitions(
    assets=trivial_assets(os.environ["TRIVIAL_GRAPH_ASSETS"].split(",")),
    executor=selected_executor(),
)
