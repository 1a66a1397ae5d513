"""tabs_assets.graph.nodes: store keys of the per-config asset graph."""

import dataclasses

import pytest

from tabs_assets.config.loading import resolve_config
from tabs_assets.graph import nodes as graph
from tabs_assets_tests.conftest import run_python


def test_result_neutral_change_keeps_keys_and_code_version_bump_changes_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base = resolve_config([], {"name": "k"}).config
    neutral = resolve_config(
        [],
        {
            "name": "k",
            "description": "other words",
            "explanation.chunk_size": 7,
            "classifier.training.accelerator": "cpu",
            "classifier.training.progress_bar": True,
        },
    ).config
    changed = resolve_config([], {"name": "k", "classifier.hidden": [51, 50]}).config
    keys = {name: graph.store_key(name, base) for name in graph.NODES}
    assert keys == {name: graph.store_key(name, neutral) for name in graph.NODES}
    assert (
        resolve_config([], {"name": "k"}).partition_key
        == resolve_config([], {"name": "k", "explanation.chunk_size": 7}).partition_key
    )
    assert graph.store_key("dataset", changed) == keys["dataset"]
    assert graph.store_key("classifier", changed) != keys["classifier"]
    assert graph.store_key("counterfactual_paths", changed) != keys["counterfactual_paths"]
    bumped = dataclasses.replace(graph.NODES["dataset"], version=2)
    monkeypatch.setitem(graph.NODES, "dataset", bumped)
    assert graph.store_key("dataset", base) != keys["dataset"]
    assert graph.store_key("classifier", base) != keys["classifier"]  # downstream follows


KEYS_SCRIPT = """
from pathlib import Path
from tabs_assets.config.loading import resolve_config
from tabs_assets.config.study import expand_study
from tabs_assets.graph.nodes import NODES, store_key
resolved = resolve_config([Path('experiments/quickstart.yaml')], ['dataset.n_points=5000'])
print(resolved.partition_key, [store_key(n, resolved.config) for n in NODES])
"""


def test_partition_and_store_keys_are_stable_across_hash_seeds() -> None:
    outputs = {run_python(KEYS_SCRIPT, env={"PYTHONHASHSEED": seed}) for seed in ("0", "1", "4242")}
    assert len(outputs) == 1
    assert outputs.pop().startswith("quickstart-")
