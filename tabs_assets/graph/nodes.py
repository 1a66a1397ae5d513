"""The per-config asset graph without Dagster: each node's config slice, upstream and store key.

A store key = hash(asset name, code version, canonical JSON of the asset's config slice, store
keys of the upstream results it uses). The code version is a manual number plus the digest of the
code the result runs (``graph.code``): the node's compute functions, the classes of the configs in
its slice, the code those configs select, and everything they use. So a code change can never
serve a stale cached result, and a change elsewhere keeps it. Keys depend only on the config and
the code, so any process can compute the key of any partition's upstream without asking Dagster.
"""

from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.explainers import LatentShiftConfig, ReviseConfig, WachterConfig
from tabs_assets.config.hashing import content_hash, result_slice
from tabs_assets.config.models import NiceConfig, PathRegularizationConfig
from tabs_assets.config.study import StudyConfig
from tabs_assets.graph import code
from tabs_assets.store.entries import KEY_LENGTH

ASSETS = "tabs_assets.defs.assets"
EXPLAINERS = "tabs_assets.science.explainers"

# Code that only the configs of one class run: in a key only when its config class is in the
# node's slice (one explainer's edit keeps the other explainers' results; an unregularized flow
# does not depend on the explainers). A function missing here is followed for every config.
SELECTED_BY: dict[type[BaseModel], tuple[str, ...]] = {
    LatentShiftConfig: (f"{EXPLAINERS}.latent_shift:latent_shift",),
    ReviseConfig: (f"{EXPLAINERS}.descent:descent",),
    WachterConfig: (f"{EXPLAINERS}.descent:descent",),
    PathRegularizationConfig: (
        "tabs_assets.science.models.path_regularized:train_path_regularized_nice",
    ),
}
SELECTABLE = frozenset(name for names in SELECTED_BY.values() for name in names)
# Code a compute function calls that cannot change its result: progress lines in the run log.
RESULT_NEUTRAL = frozenset({"tabs_assets.ui.describe:epoch_progress"})


def _configs_in(value: Any) -> Iterator[BaseModel]:
    """Every config object in a slice (nested ones too)."""
    if isinstance(value, BaseModel):
        yield value
        value = dict(value)
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list | tuple):
        for item in value:
            yield from _configs_in(item)


def _definition_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def code_version(version: int, roots: tuple[str, ...], config_slice: Any = None) -> str:
    """``version.digest``: over ``roots`` and, given a slice, its configs' classes and the code
    they select; without one, over everything any config could select."""
    if config_slice is None:
        return f"{version}.{code.code_digest(roots, RESULT_NEUTRAL, code.PACKAGE_DIR)[:12]}"
    configs = {type(config) for config in _configs_in(config_slice)}
    selected = {name for cls in configs for name in SELECTED_BY.get(cls, ())}
    all_roots = tuple(sorted({*roots, *map(_definition_of, configs), *selected}))
    excluded = (SELECTABLE - selected) | RESULT_NEUTRAL
    return f"{version}.{code.code_digest(all_roots, excluded, code.PACKAGE_DIR)[:12]}"


@dataclass(frozen=True)
class Node:
    """One per-config asset: what of the config it reads and which results it builds on."""

    name: str
    version: int
    roots: tuple[str, ...]  # its compute functions ("module:name"); graph.code follows the rest
    config_slice: Callable[[ExperimentConfig], dict[str, Any]]
    inputs: tuple[str, ...]
    description: str
    uses: Callable[[ExperimentConfig], tuple[str, ...]] | None = None
    namespace: str | None = None  # assets with equal results share entries (see below)

    @property
    def store_name(self) -> str:
        """The store folder; equal for assets whose results are interchangeable."""
        return self.namespace or self.name

    def upstream(self, config: ExperimentConfig) -> tuple[str, ...]:
        """The inputs this config's result really depends on (a subset of ``inputs``)."""
        return self.uses(config) if self.uses else self.inputs

    @property
    def code_version(self) -> str:
        """Dagster's code version: over all the code the result can run, for any config."""
        return code_version(self.version, self.roots)

    def code_version_for(self, config: ExperimentConfig) -> str:
        """The code version in ``config``'s store key."""
        return code_version(self.version, self.roots, self.config_slice(config))


def _dataset_slice(config: ExperimentConfig) -> dict[str, Any]:
    from tabs_assets.science.datasets.fingerprint import dataset_fingerprint

    return {"dataset": config.dataset, "file_sha256": dataset_fingerprint(config.dataset)}


def _reference_slice(config: ExperimentConfig) -> dict[str, Any]:
    """A NICE: ReferenceDensityConfig only forbids path regularization, so the reference density
    shares its entry (and code version) with an equal unregularized generative model."""
    return {"model": NiceConfig(**dict(config.reference_density))}


def _flow_regularized(config: ExperimentConfig) -> bool:
    return config.generative_model.path_regularized


def _generative_upstream(config: ExperimentConfig) -> tuple[str, ...]:
    return ("dataset", "classifier") if _flow_regularized(config) else ("dataset",)


def _paths_upstream(config: ExperimentConfig) -> tuple[str, ...]:
    if not config.explainer.needs_generative_model:
        return ("dataset", "classifier")
    return ("dataset", "classifier", "generative_model")


# The generative model and the reference density share a namespace, roots and slice layout:
# when the explainers' NICE equals the unregularized reference NICE, it is trained once.
FLOW_NAMESPACE = "generative_models"
FLOW_ROOTS = (f"{ASSETS}.models:generative_model", f"{ASSETS}.models:reference_density")

NODES: dict[str, Node] = {
    node.name: node
    for node in (
        Node(
            "dataset",
            1,
            (f"{ASSETS}.dataset:dataset",),
            _dataset_slice,
            (),
            "Loaded, split and train-normalised data set (SCIENCE.md §1).",
        ),
        Node(
            "classifier",
            1,
            (f"{ASSETS}.models:classifier",),
            lambda c: {"classifier": c.classifier},
            ("dataset",),
            "MLP classifier trained on the training split (§2).",
        ),
        Node(
            "generative_model",
            1,
            FLOW_ROOTS,
            lambda c: {"model": c.generative_model},
            ("dataset", "classifier"),
            "NICE / AE / VAE the explainers move in; optionally path-regularized (§2, §5).",
            _generative_upstream,
            namespace=FLOW_NAMESPACE,
        ),
        Node(
            "reference_density",
            1,
            FLOW_ROOTS,  # never path-regularized (ReferenceDensityConfig rejects it)
            _reference_slice,
            ("dataset",),
            "Unregularized NICE that scores the plausibility of path points (§6).",
            namespace=FLOW_NAMESPACE,
        ),
        Node(
            "counterfactual_paths",
            1,
            (f"{ASSETS}.explanations:counterfactual_paths",),
            lambda c: {"explainer": c.explainer, "loss": c.loss, "explanation": c.explanation},
            ("dataset", "classifier", "generative_model"),
            "Counterfactual paths for every explained point (§4).",
            _paths_upstream,
        ),
        Node(
            "explanation_metrics",
            1,
            (f"{ASSETS}.explanations:explanation_metrics",),
            lambda c: {"metrics": c.metrics},
            ("counterfactual_paths", "reference_density", "dataset", "classifier"),
            "Validity, time per step, NLL, crossings, L1/LOF AUC over the whole split (§6).",
        ),
        Node(
            "plots",
            1,
            (f"{ASSETS}.plots:plots",),
            # the loss landscape is drawn; the explainer explains the §7.6 example paths
            lambda c: {"plots": c.plots, "loss": c.loss, "explainer": c.explainer},
            (
                "dataset",
                "classifier",
                "generative_model",
                "counterfactual_paths",
                "explanation_metrics",
            ),
            "Figures of the config (§7.6, §8).",
        ),
    )
}


# Keys per config object: a config's keys are asked for many times per run (every asset's
# key contains its upstream keys). The cache holds the config itself, so an id is never reused
# while its entry lives; configs are frozen. What else goes into a key is checked on every use:
# a user's data file by its (per-process cached) fingerprint, the graph by its nodes' identity.
_KEYS: OrderedDict[int, tuple[ExperimentConfig, tuple, dict[str, str]]] = OrderedDict()
_KEYS_CAPACITY = 1024


def store_key(asset: str, config: ExperimentConfig) -> str:
    """The content address of ``asset``'s result for ``config``."""
    from tabs_assets.science.datasets.fingerprint import dataset_fingerprint

    inputs = (dataset_fingerprint(config.dataset), code.PACKAGE_DIR, *map(id, NODES.values()))
    cached = _KEYS.get(id(config))
    if cached is None or cached[0] is not config or cached[1] != inputs:
        cached = (config, inputs, {})
        _KEYS[id(config)] = cached
        if len(_KEYS) > _KEYS_CAPACITY:
            _KEYS.popitem(last=False)
    keys = cached[2]
    if asset not in keys:
        keys[asset] = content_hash(key_material(asset, config))[:KEY_LENGTH]
    return keys[asset]


def entry_address(asset: str, config: ExperimentConfig) -> tuple[str, str]:
    """(store folder, key) of ``asset``'s result for ``config``."""
    return NODES[asset].store_name, store_key(asset, config)


def key_material(asset: str, config: ExperimentConfig) -> dict[str, Any]:
    """Everything that goes into a store key, as plain data (shown by `store show`)."""
    node = NODES[asset]
    return {
        "asset": node.store_name,
        "code_version": node.code_version_for(config),
        "slice": result_slice(node.config_slice(config)),
        "upstream": {name: store_key(name, config) for name in node.upstream(config)},
    }


# Study assets: partitioned by study, a chain built only from the study's own member partitions:
# study_members (every member's results in the store) -> study_table -> study_report.
STUDY_ROOTS: dict[str, tuple[str, ...]] = {
    "study_members": (f"{ASSETS}.study_members:record_study_members",),
    "study_table": (f"{ASSETS}.study_report:study_table",),
    "study_report": (f"{ASSETS}.study_report:study_report",),
}
STUDY_UPSTREAM = {"study_table": "study_members", "study_report": "study_table"}
STUDY_VERSION = 1


def study_code_version(asset: str) -> str:
    return code_version(STUDY_VERSION, STUDY_ROOTS[asset])


def study_key_material(
    asset: str, study: StudyConfig, members: dict[str, ExperimentConfig]
) -> dict[str, Any]:
    """study_members builds on each member's ``report.member_asset``; the rest on their
    predecessor in the chain."""
    if asset == "study_members":
        member_asset = study.report.member_asset
        upstream = {key: store_key(member_asset, c) for key, c in sorted(members.items())}
    else:
        previous = STUDY_UPSTREAM[asset]
        upstream = {previous: study_store_key(previous, study, members)}
    return {
        "asset": asset,
        "code_version": study_code_version(asset),
        "slice": result_slice(study),
        "upstream": upstream,
    }


def study_store_key(asset: str, study: StudyConfig, members: dict[str, ExperimentConfig]) -> str:
    return content_hash(study_key_material(asset, study, members))[:KEY_LENGTH]
