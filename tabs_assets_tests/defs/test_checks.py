"""tabs_assets.defs.checks: pass on a real run, fail on crafted entries, block downstream."""

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from dagster import AssetKey, DagsterInstance

from tabs_assets import settings
from tabs_assets.cli.main import main
from tabs_assets.defs import checks
from tabs_assets.registry.records import Registry
from tabs_assets.store.entries import MANIFEST, Store
from tabs_assets_tests.conftest import FAST_OVERRIDES


def _entry(tmp_path: Path, metrics: dict[str, Any], files: dict[str, Any] | None = None) -> Path:
    """A crafted store entry: a manifest with ``metrics`` and extra JSON files."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / MANIFEST).write_text(json.dumps({"report": {"metrics": metrics}}))
    for name, content in (files or {}).items():
        (tmp_path / name).write_text(json.dumps(content))
    return tmp_path


def _classifier(tmp_path: Path, accuracy: float) -> Path:
    # 60 of 100 test rows in class 0: always predicting it is 60 % accurate.
    matrix = [[60, 0, 0], [30, 0, 0], [10, 0, 0]]
    meta = {checks.MODEL_META: {"test_metrics": {"confusion_matrix": matrix}}}
    return _entry(tmp_path, {"test_accuracy": accuracy}, meta)


def test_classifier_check_compares_with_the_majority_class_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    untrained = checks.classifier_above_chance(_classifier(tmp_path / "a", 0.6))  # 0 epochs
    expected = "test accuracy 0.6000 vs majority-class rate 0.6000 + margin 0.05"
    assert untrained == (False, "ERROR", expected)
    assert checks.classifier_above_chance(_classifier(tmp_path / "b", 0.64)).passed is False
    assert checks.classifier_above_chance(_classifier(tmp_path / "c", 0.66)).passed is True
    monkeypatch.setenv(settings.ACCURACY_MARGIN_ENV, "0.3")
    assert checks.classifier_above_chance(_classifier(tmp_path / "d", 0.8)).passed is False


def test_flow_check_fails_on_a_broken_round_trip_or_nan_nll(tmp_path: Path) -> None:
    good = {"test_nll": 2.1, "test_round_trip_error": 3e-6}
    assert checks.flow_sound(_entry(tmp_path / "good", good)).passed
    corrupted = checks.flow_sound(_entry(tmp_path / "rt", {**good, "test_round_trip_error": 0.4}))
    assert not corrupted.passed and "round trip broken" in corrupted.message
    nan = checks.flow_sound(_entry(tmp_path / "nan", {**good, "test_nll": math.nan}))
    assert not nan.passed and "test_nll not finite" in nan.message
    assert checks.flow_sound(_entry(tmp_path / "ae", {"test_mse": 0.2})).passed
    assert not checks.flow_sound(_entry(tmp_path / "none", {"epochs": 3})).passed


def _paths_entry(tmp_path: Path, points: np.ndarray, validity_rate: float) -> Path:
    from safetensors.numpy import save_file

    entry = _entry(tmp_path, {"n_paths": points.shape[1], "validity_rate": validity_rate})
    logits = np.zeros((*points.shape[:2], 3), dtype=np.float32)
    save_file({"points": points, "logits": logits}, str(entry / checks.PATHS_TENSORS))
    return entry


def test_paths_checks_fail_on_nan_points_and_warn_on_no_valid_path(tmp_path: Path) -> None:
    points = np.zeros((4, 5, 2), dtype=np.float32)
    assert checks.paths_finite(_paths_entry(tmp_path / "ok", points, 0.2)).passed
    points[2, 1, 0] = np.nan
    points[3, 1, 1] = np.inf
    broken = checks.paths_finite(_paths_entry(tmp_path / "nan", points, 0.2))
    assert broken == (False, "ERROR", "2 non-finite points values, 0 non-finite logits values")
    none_valid = checks.paths_any_valid(_paths_entry(tmp_path / "none", points, 0.0))
    assert none_valid.passed is False and none_valid.severity == "WARN"


def test_metrics_check_allows_nan_only_where_undefined(tmp_path: Path) -> None:
    over_valid = {name: math.nan for name in checks.OVER_VALID_PATHS}
    no_valid = {"n_paths": 10, "n_valid": 0, "validity_rate": 0.0, "l1_auc": 1.5, **over_valid}
    assert checks.metrics_explained(_entry(tmp_path / "a", no_valid)).passed
    valid = {**no_valid, "n_valid": 3, "cf_l1": 0.7, "cf_step": 4.0}
    outcome = checks.metrics_explained(_entry(tmp_path / "b", valid))
    assert not outcome.passed and "cf_nll=nan" in outcome.message
    at_start = {**{k: 1.0 for k in checks.OVER_VALID_PATHS}, "n_paths": 2, "n_valid": 2}
    at_start |= {"cf_step": 0, "mean_nll": math.nan, "mean_distance_to_max": math.nan}
    assert checks.metrics_explained(_entry(tmp_path / "c", at_start)).passed
    infinite = {**at_start, "cf_nll": math.inf}
    assert not checks.metrics_explained(_entry(tmp_path / "d", infinite)).passed


def _run(key: str) -> Any:
    from tabs_assets.defs.definitions import defs
    from tabs_assets.graph.nodes import NODES

    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(
        partition_key=key,
        instance=DagsterInstance.get(),
        asset_selection=[AssetKey(name) for name in NODES if name != "plots"],
        raise_on_error=False,
    )


def _evaluations(result: Any) -> dict[str, bool]:
    return {
        f"{e.asset_key.path[-1]}:{e.check_name}": e.passed
        for e in result.get_asset_check_evaluations()
    }


def _materialized(result: Any) -> set[str]:
    return {e.materialization.asset_key.path[-1] for e in result.get_asset_materialization_events()}


def test_checks_pass_on_a_real_run_and_a_failed_blocking_check_stops_downstream(
    register, project_env, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = register("checked", FAST_OVERRIDES)
    first = _run(key)
    assert first.success
    names = {f"{spec.asset}:{spec.name}" for spec in checks.CHECKS}
    assert _evaluations(first) == dict.fromkeys(names, True)
    config = Registry(project_env["store"]).config(key)
    results = checks.check_results(config, Store(project_env["store"]))
    assert {name: outcome.passed for name, outcome in results.items()} == dict.fromkeys(names, True)

    # A classifier no better than chance (here: an impossible margin) blocks everything after it.
    monkeypatch.setenv(settings.ACCURACY_MARGIN_ENV, "1.0")
    blocked = _run(key)
    assert not blocked.success
    assert _evaluations(blocked)["classifier:accuracy_above_chance"] is False
    done = _materialized(blocked)
    assert {"dataset", "classifier", "reference_density"} <= done
    assert not done & {"counterfactual_paths", "explanation_metrics"}
    assert not checks.check_results(config, Store(project_env["store"]))[
        "classifier:accuracy_above_chance"
    ].passed
    listing = CliRunner().invoke(main, ["list"])
    assert listing.exit_code == 0, listing.output
    assert "checks 4/5 passed" in listing.output  # paths_finite reads the paths: not listed
    assert "ERROR classifier:accuracy_above_chance: test accuracy" in listing.output
