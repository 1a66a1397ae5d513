"""The per-config asset graph without Dagster: each node's config slice, upstream and store key.

A store key = hash(asset name, code version, canonical JSON of the asset's config slice, store
keys of the upstream results it uses). The code version is a manual number plus a digest of the
source files the result depends on, so a code change can never serve a stale cached result.
A Python file is digested by its parsed code without comments, docstrings and line numbers
(``ast.dump``), so only an edit that can change behaviour changes a key. Keys depend only on
the config and the code, so any process can compute the key of any partition's upstream without
asking Dagster.
"""

import ast
import hashlib
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.config.hashing import content_hash, result_slice
from tabs_assets.config.study import StudyConfig
from tabs_assets.files import write_file_durably
from tabs_assets.orchestration.store import KEY_LENGTH

PACKAGE_DIR = Path(__file__).resolve().parents[1]


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    """Drop every statement that is a bare string (docstrings): it cannot change behaviour."""
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            node.body = [  # type: ignore[attr-defined]
                statement
                for statement in body
                if not (
                    isinstance(statement, ast.Expr)
                    and isinstance(statement.value, ast.Constant)
                    and isinstance(statement.value.value, str)
                )
            ]
    return tree


def code_text(path: Path) -> bytes:
    """What of a source file goes into a key: a Python file's syntax tree without comments,
    docstrings or positions (any other edit changes it); any other file's bytes."""
    if path.suffix != ".py":
        return path.read_bytes()
    tree = _strip_docstrings(ast.parse(path.read_bytes(), filename=str(path)))
    return ast.dump(tree, include_attributes=False).encode()


# Parsing every source file costs a quarter of a second at each start: the digests are kept on
# disk, keyed by the files' names, sizes and modification times (a file modified within the
# last RACY_S seconds may change again unseen by its timestamp, so such a digest is not kept).
DIGESTS_FILE = "__pycache__/tabs_assets_source_digests.json"
RACY_S = 2.0


@cache
def _remembered_digests(root: Path) -> dict[str, Any]:
    try:
        remembered = json.loads((root / DIGESTS_FILE).read_text())
        return remembered if isinstance(remembered, dict) else {}
    except (OSError, ValueError):
        return {}


@cache
def _source_digest(patterns: tuple[str, ...], root: Path) -> str:
    paths = sorted({p for pattern in patterns for p in root.glob(pattern)})
    stats = [path.stat() for path in paths]
    signature = [
        [path.relative_to(root).as_posix(), stat.st_size, stat.st_mtime_ns]
        for path, stat in zip(paths, stats, strict=True)
    ]
    remembered = _remembered_digests(root)
    name = json.dumps(patterns)
    if remembered.get(name, {}).get("files") == signature:
        return remembered[name]["digest"]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(code_text(path))
    if all(time.time() - stat.st_mtime > RACY_S for stat in stats):
        remembered[name] = {"files": signature, "digest": digest.hexdigest()}
        with suppress(OSError):  # a read-only checkout: parsed again next time
            (root / DIGESTS_FILE).parent.mkdir(exist_ok=True)
            write_file_durably(root / DIGESTS_FILE, json.dumps(remembered), durable=False)
    return digest.hexdigest()


def source_digest(patterns: tuple[str, ...]) -> str:
    """sha256 over the code of the (sorted) source files matching ``patterns`` under the package.

    Cached per process (sources do not change under a running process), per package root and
    on disk (see DIGESTS_FILE).
    """
    return _source_digest(patterns, PACKAGE_DIR)


@dataclass(frozen=True)
class Node:
    """One per-config asset: what of the config it reads and which results it builds on."""

    name: str
    version: int
    sources: tuple[str, ...]
    config_slice: Callable[[ExperimentConfig], dict[str, Any]]
    inputs: tuple[str, ...]
    description: str
    uses: Callable[[ExperimentConfig], tuple[str, ...]] | None = None
    namespace: str | None = None  # assets with equal results share entries (see below)
    # Sources the result depends on only for some configs (a flow on the explainer code only
    # when it is path-regularized): in the key exactly when ``conditional_when(config)``.
    conditional_sources: tuple[str, ...] = ()
    conditional_when: Callable[[ExperimentConfig], bool] | None = None

    @property
    def store_name(self) -> str:
        """The store folder; equal for assets whose results are interchangeable."""
        return self.namespace or self.name

    def upstream(self, config: ExperimentConfig) -> tuple[str, ...]:
        """The inputs this config's result really depends on (a subset of ``inputs``)."""
        return self.uses(config) if self.uses else self.inputs

    @property
    def code_version(self) -> str:
        """Dagster's code version: over every source the result can depend on, for any config."""
        return f"{self.version}.{source_digest(self.sources + self.conditional_sources)[:12]}"

    def sources_for(self, config: ExperimentConfig) -> tuple[str, ...]:
        """The sources ``config``'s result depends on."""
        if self.conditional_when is not None and self.conditional_when(config):
            return self.sources + self.conditional_sources
        return self.sources

    def code_version_for(self, config: ExperimentConfig) -> str:
        """The code version in ``config``'s store key."""
        return f"{self.version}.{source_digest(self.sources_for(config))[:12]}"


def _dataset_slice(config: ExperimentConfig) -> dict[str, Any]:
    from tabs_assets.science.datasets.fingerprint import dataset_fingerprint

    return {"dataset": config.dataset, "file_sha256": dataset_fingerprint(config.dataset)}


def _flow_regularized(config: ExperimentConfig) -> bool:
    return config.generative_model.path_regularized


def _generative_upstream(config: ExperimentConfig) -> tuple[str, ...]:
    return ("dataset", "classifier") if _flow_regularized(config) else ("dataset",)


def _paths_upstream(config: ExperimentConfig) -> tuple[str, ...]:
    if not config.explainer.needs_generative_model:
        return ("dataset", "classifier")
    return ("dataset", "classifier", "generative_model")


# Every node's sources include the asset module whose compute function shapes its result.
MODEL_SOURCES = ("config/models.py", "science/models/*.py", "orchestration/assets/models.py")
EXPLAINER_SOURCES = (
    "config/explainers.py",
    "config/losses.py",
    "science/explainers.py",
    "science/evaluation.py",
    "science/losses.py",
    "orchestration/assets/explanations.py",
)
# The generative model and the reference density share a namespace, sources and slice layout:
# when the explainers' NICE equals the unregularized reference NICE, it is trained once. Only a
# path-regularized flow runs the explainers while training, so only its key has their sources.
FLOW_NAMESPACE = "generative_models"

NODES: dict[str, Node] = {
    node.name: node
    for node in (
        Node(
            "dataset",
            1,
            ("config/datasets.py", "science/datasets/*.py", "orchestration/assets/dataset.py"),
            _dataset_slice,
            (),
            "Loaded, split and train-normalised data set (SCIENCE.md §1).",
        ),
        Node(
            "classifier",
            1,
            MODEL_SOURCES,
            lambda c: {"classifier": c.classifier},
            ("dataset",),
            "MLP classifier trained on the training split (§2).",
        ),
        Node(
            "generative_model",
            1,
            MODEL_SOURCES,
            lambda c: {"model": c.generative_model},
            ("dataset", "classifier"),
            "NICE / AE / VAE the explainers move in; optionally path-regularized (§2, §5).",
            _generative_upstream,
            namespace=FLOW_NAMESPACE,
            conditional_sources=EXPLAINER_SOURCES,
            conditional_when=_flow_regularized,
        ),
        Node(
            "reference_density",
            1,
            MODEL_SOURCES,  # never path-regularized (ReferenceDensityConfig rejects it)
            lambda c: {"model": c.reference_density},
            ("dataset",),
            "Unregularized NICE that scores the plausibility of path points (§6).",
            namespace=FLOW_NAMESPACE,
        ),
        Node(
            "counterfactual_paths",
            1,
            EXPLAINER_SOURCES,
            lambda c: {"explainer": c.explainer, "loss": c.loss, "explanation": c.explanation},
            ("dataset", "classifier", "generative_model"),
            "Counterfactual paths for every explained point (§4).",
            _paths_upstream,
        ),
        Node(
            "explanation_metrics",
            1,
            (
                "config/experiment.py",
                "science/metrics.py",
                "science/evaluation.py",
                "orchestration/assets/explanations.py",
            ),
            lambda c: {"metrics": c.metrics},
            ("counterfactual_paths", "reference_density", "dataset", "classifier"),
            "Validity, time per step, NLL, crossings, L1/LOF AUC over the whole split (§6).",
        ),
        Node(
            "plots",
            1,
            ("science/plotting/*.py", "science/records.py", "orchestration/assets/plots.py"),
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

    inputs = (dataset_fingerprint(config.dataset), PACKAGE_DIR, *map(id, NODES.values()))
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
STUDY_SOURCES: dict[str, tuple[str, ...]] = {
    "study_members": (
        "config/study.py",
        "orchestration/study_run.py",
        "orchestration/assets/studies.py",
    ),
    "study_table": (
        "config/study.py",
        "science/study_tables.py",
        "science/metrics.py",
        "orchestration/assets/studies.py",
    ),
    "study_report": (
        "config/study.py",
        "science/study_tables.py",
        "science/study_report.py",
        "science/plotting/studies.py",
        "science/plotting/maps.py",
        "science/plotting/grids.py",
        "science/plotting/evaluation.py",
        "science/plotting/drawing.py",
        "science/plotting/style.py",
        "orchestration/assets/studies.py",
    ),
}
STUDY_UPSTREAM = {"study_table": "study_members", "study_report": "study_table"}
STUDY_VERSION = 1


def study_code_version(asset: str) -> str:
    return f"{STUDY_VERSION}.{source_digest(STUDY_SOURCES[asset])[:12]}"


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
