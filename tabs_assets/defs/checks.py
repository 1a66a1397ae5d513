"""Asset checks: is a per-config result sound enough to build on? (issue #10)

Each check reads what its asset's store entry already reports (the manifest's ``report.metrics``,
a model's small JSON, for paths the tensors themselves) and says pass or fail with a message.
The rules are plain functions of a store entry, so ``tabs-assets list`` shows the same results
as the Dagster UI (``check_results``). A failed blocking check (severity ERROR) stops the
downstream assets of its run: building on a chance-level classifier, a flow whose round trip is
broken or paths with NaN points gives results that mean nothing.

Thresholds come from environment variables, read when a check runs:

- ``TABS_ASSETS_CHECK_ACCURACY_MARGIN`` (default 0.05): the classifier's test accuracy must exceed
  the majority-class rate of the test split (the accuracy of always predicting the largest
  class; at least 1 / n_classes, and the honest "chance" on imbalanced data) by this much.
- ``TABS_ASSETS_CHECK_MAX_ROUND_TRIP`` (default 1e-3, normalised units): the largest
  ``|Dec(Enc(x)) - x|`` of a flow over the test split.

Importing this module imports no torch, lightning or mlflow.
"""

import json
import math
import warnings
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, PreviewWarning

from tabs_assets import settings
from tabs_assets.config.experiment import OVER_STEPS_BEFORE, OVER_VALID_PATHS, ExperimentConfig
from tabs_assets.defs.partitions import config_partitions
from tabs_assets.graph.nodes import entry_address
from tabs_assets.store.entries import MANIFEST, Store, StoreEntry
from tabs_assets.store.errors import StoreError

# A check per config partition (each config's entries differ); Dagster marks this as preview.
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*partitions_def.*")
warnings.filterwarnings("ignore", category=PreviewWarning, message=".*AssetCheckSpec.*")

MODEL_META = "model.json"  # science.models.trained.META_FILE (not imported: it pulls in torch)
PATHS_TENSORS = "paths.safetensors"  # science.explainers.TENSORS_FILE (idem)


class CheckOutcome(NamedTuple):
    """One check's verdict on one store entry; unpacks as (passed, severity, message)."""

    passed: bool
    severity: str  # "ERROR" (blocks downstream when the check is blocking) or "WARN"
    message: str


def _metrics(entry: Path) -> dict[str, Any]:
    manifest = json.loads((entry / MANIFEST).read_text())
    return manifest.get("report", {}).get("metrics", {})


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# --------------------------------------------------------------------------------------------
# The rules: store entry directory -> outcome


def classifier_above_chance(entry: Path) -> CheckOutcome:
    """Test accuracy > majority-class rate of the test split + margin."""
    margin = settings.check_accuracy_margin()
    accuracy = _metrics(entry).get("test_accuracy")
    matrix = json.loads((entry / MODEL_META).read_text())["test_metrics"]["confusion_matrix"]
    per_class = [sum(row) for row in matrix]  # rows: true classes
    majority = max(per_class) / sum(per_class) if sum(per_class) else math.nan
    chance = max(majority, 1 / len(per_class)) if per_class else math.nan
    passed = _finite(accuracy) and _finite(chance) and accuracy > chance + margin
    return CheckOutcome(
        passed,
        "ERROR",
        f"test accuracy {accuracy:.4f} vs majority-class rate {chance:.4f} + margin {margin}",
    )


def flow_sound(entry: Path) -> CheckOutcome:
    """A NICE: finite test NLL and round trip error <= tolerance; an AE/VAE: finite test MSE."""
    tolerance = settings.check_max_round_trip()
    metrics = _metrics(entry)
    problems, facts = [], []
    if "test_round_trip_error" in metrics:
        error = metrics["test_round_trip_error"]
        facts.append(f"round trip error {error:.3g} (max {tolerance:g})")
        if not (_finite(error) and error <= tolerance):
            problems.append("round trip broken")
    for name in ("test_nll", "test_mse"):
        if name in metrics:
            facts.append(f"{name} {metrics[name]:.4g}")
            if not _finite(metrics[name]):
                problems.append(f"{name} not finite")
    if not facts:
        problems.append("no test metrics reported")
    message = "; ".join(problems + facts)
    return CheckOutcome(not problems, "ERROR", message)


def _path_tensors(entry: Path) -> dict[str, Any]:
    from safetensors import safe_open  # numpy only: no torch

    with safe_open(str(entry / PATHS_TENSORS), framework="numpy") as tensors:
        return {name: tensors.get_tensor(name) for name in ("points", "logits")}


def paths_finite(entry: Path) -> CheckOutcome:
    """Every path point and its logits are finite numbers."""
    import numpy as np

    counts = {name: int((~np.isfinite(v)).sum()) for name, v in _path_tensors(entry).items()}
    message = ", ".join(f"{n} non-finite {name} values" for name, n in counts.items())
    return CheckOutcome(not any(counts.values()), "ERROR", message)


def paths_any_valid(entry: Path) -> CheckOutcome:
    """At least one path reaches its target (a warning: a method may legitimately fail)."""
    metrics = _metrics(entry)
    rate, n_paths = metrics.get("validity_rate"), metrics.get("n_paths", 0)
    passed = n_paths == 0 or (_finite(rate) and rate > 0)
    return CheckOutcome(passed, "WARN", f"validity rate {rate} over {n_paths} paths")


def metrics_explained(entry: Path) -> CheckOutcome:
    """Every metric finite, except NaN where it is undefined: no path at all, no valid path
    (metrics over valid paths), no step before the counterfactual (cf_step == 0)."""
    metrics = _metrics(entry)
    n_paths, n_valid = metrics.get("n_paths", 0), metrics.get("n_valid", 0)
    unexplained = []
    for name, value in metrics.items():
        if _finite(value):
            continue
        is_nan = isinstance(value, float) and math.isnan(value)
        explained = is_nan and (
            n_paths == 0
            or (n_valid == 0 and name in OVER_VALID_PATHS)
            or (name in OVER_STEPS_BEFORE and metrics.get("cf_step") == 0)
        )
        if not explained:
            unexplained.append(f"{name}={value}")
    message = "unexplained: " + ", ".join(unexplained) if unexplained else "all finite or explained"
    return CheckOutcome(not unexplained, "ERROR", message)


# --------------------------------------------------------------------------------------------
# Which rule checks which asset


@dataclass(frozen=True)
class CheckSpec:
    name: str
    asset: str
    rule: Callable[[Path], CheckOutcome]
    blocking: bool
    description: str
    reads_payload: bool = False  # reads more than the manifest and small JSON files


CHECKS = (
    CheckSpec(
        "accuracy_above_chance",
        "classifier",
        classifier_above_chance,
        True,
        f"Test accuracy above the majority-class rate + ${settings.ACCURACY_MARGIN_ENV} (default "
        f"{settings.DEFAULT_ACCURACY_MARGIN}); explanations of a chance-level classifier mean "
        "nothing.",
    ),
    CheckSpec(
        "flow_sound",
        "generative_model",
        flow_sound,
        True,
        f"NICE: finite test NLL, round trip error <= ${settings.MAX_ROUND_TRIP_ENV} (default "
        f"{settings.DEFAULT_MAX_ROUND_TRIP}); AE/VAE: finite test MSE.",
    ),
    CheckSpec(
        "flow_sound",
        "reference_density",
        flow_sound,
        True,
        "Finite test NLL and a working round trip: the plausibility metrics rest on it.",
    ),
    CheckSpec(
        "paths_finite",
        "counterfactual_paths",
        paths_finite,
        True,
        "Every path point and its logits are finite.",
        reads_payload=True,
    ),
    CheckSpec(
        "any_valid_path",
        "counterfactual_paths",
        paths_any_valid,
        False,
        "At least one path reaches its target (warning only).",
    ),
    CheckSpec(
        "metrics_finite_or_explained",
        "explanation_metrics",
        metrics_explained,
        False,
        "Every metric finite; NaN only where undefined (no path, no valid path, ...).",
    ),
)


def _evaluate(spec: CheckSpec, entry: Path) -> CheckOutcome:
    try:
        return spec.rule(entry)
    except (OSError, KeyError, ValueError, TypeError) as error:  # an unreadable report fails
        return CheckOutcome(False, "ERROR", f"cannot evaluate: {type(error).__name__}: {error}")


def check_settings() -> dict[str, float]:
    """The thresholds the rules read today: a stored outcome is reused only under the same."""
    return {
        "accuracy_margin": settings.check_accuracy_margin(),
        "max_round_trip": settings.check_max_round_trip(),
    }


def specs_of(asset: str) -> tuple[CheckSpec, ...]:
    return tuple(spec for spec in CHECKS if spec.asset == asset)


def _stored(manifest: dict[str, Any], settings: dict[str, float]) -> dict[str, list[Any]]:
    stored = manifest.get("checks")
    if not isinstance(stored, dict) or stored.get("settings") != settings:
        return {}
    outcomes = stored.get("outcomes")
    return outcomes if isinstance(outcomes, dict) else {}


def stored_checks(asset: str, entry: Path) -> dict[str, Any]:
    """The manifest field that keeps ``asset``'s check outcomes for a new entry (Store.write's
    ``annotate``): a later hit re-reports them without evaluating."""
    outcomes = {spec.name: list(_evaluate(spec, entry)) for spec in specs_of(asset)}
    return {"checks": {"settings": check_settings(), "outcomes": outcomes}} if outcomes else {}


def entry_outcomes(
    store: Store, entry: StoreEntry, asset: str
) -> tuple[StoreEntry, dict[str, CheckOutcome]]:
    """check name -> outcome for ``asset``'s checks on ``entry``.

    An entry never changes, so an outcome evaluated once under today's thresholds is kept in
    its manifest and reused: a cache hit re-reports its checks without reading the payload.
    """
    specs = specs_of(asset)
    settings = check_settings()
    stored = _stored(entry.manifest, settings)
    if all(spec.name in stored for spec in specs):
        return entry, {spec.name: CheckOutcome(*stored[spec.name]) for spec in specs}
    outcomes = {spec.name: _evaluate(spec, entry.path) for spec in specs}
    merged = {**stored, **{name: list(outcome) for name, outcome in outcomes.items()}}
    with suppress(StoreError):  # a read-only store: evaluated again next time
        entry = store.update_manifest(entry, checks={"settings": settings, "outcomes": merged})
    return entry, outcomes


def check_results(
    config: ExperimentConfig, store: Store, include_payload: bool = True
) -> dict[str, CheckOutcome]:
    """``asset:check`` -> outcome, for the config's entries that are in the store.

    Outcomes stored in the manifests are reused. ``include_payload=False`` leaves out checks
    that would have to read a payload (paths_finite reads every path point) and were never
    stored: what a listing of many configs can afford.
    """
    results = {}
    settings = check_settings()
    for spec in CHECKS:
        entry = store.entry_path(*entry_address(spec.asset, config))
        try:
            manifest = json.loads((entry / MANIFEST).read_text())
        except (OSError, ValueError):
            continue
        stored = _stored(manifest, settings) if isinstance(manifest, dict) else {}
        if spec.name in stored:
            results[f"{spec.asset}:{spec.name}"] = CheckOutcome(*stored[spec.name])
        elif include_payload or not spec.reads_payload:
            results[f"{spec.asset}:{spec.name}"] = _evaluate(spec, entry)
    return results


# --------------------------------------------------------------------------------------------
# Dagster: the checks are declared on their assets and reported by the asset's own step, so a
# cache hit re-reports stored outcomes instead of running a step per check.


def dagster_check_specs(asset: str) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(
            spec.name,
            asset=asset,
            blocking=spec.blocking,
            description=spec.description,
            partitions_def=config_partitions,
        )
        for spec in specs_of(asset)
    ]


def dagster_check_results(
    asset: str, outcomes: dict[str, CheckOutcome], entry: Path
) -> list[AssetCheckResult]:
    return [
        AssetCheckResult(
            asset_key=asset,
            check_name=name,
            passed=outcome.passed,
            severity=AssetCheckSeverity(outcome.severity),
            description=outcome.message,
            metadata={"store_path": str(entry)},
        )
        for name, outcome in outcomes.items()
    ]
