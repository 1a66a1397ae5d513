"""Study files: a base config + a sweep grid + seeds, expanded into member configs."""

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from tabs_assets.config.base import Seed, StrictModel, neutral
from tabs_assets.config.errors import ConfigError
from tabs_assets.config.experiment import (
    MAX_DESCRIPTION_LENGTH,
    MAX_NAME_LENGTH,
    METRICS,
    NAME_PATTERN,
    ExperimentConfig,
)
from tabs_assets.config.hashing import content_hash
from tabs_assets.config.loading import ResolvedConfig, absolute_data_path, resolve_config
from tabs_assets.config.slurm import SlurmSettings
from tabs_assets.config.yaml_files import STUDY_FILE_KEY as STUDY_KEY
from tabs_assets.config.yaml_files import read_yaml

STUDY_DESCRIPTION_SOURCE = "derived: the study and the member's sweep values and seed"
# Bounds that keep `register` fast (every member is validated and hashed): about 2 ms a member.
MAX_SEEDS = 100
MAX_STUDY_MEMBERS = 5000
# What a report may group by besides the sweep's keys (science.study_tables.standard_labels).
STANDARD_LABELS = ("dataset", "generative", "explainer", "loss", "loss_weight", "seed")


class SeedsConfig(StrictModel):
    """Each seed value is written to every dotted key in ``keys``."""

    keys: list[str] = Field(default_factory=lambda: ["generative_model.training.seed"])
    values: list[Seed] = Field(min_length=1, max_length=MAX_SEEDS)


class RankingConfig(StrictModel):
    """The ``top`` items with the best mean ``metric`` within each ``group``."""

    group: str = "dataset"
    items: list[str] = Field(default_factory=lambda: ["loss", "loss_weight", "explainer"])
    metric: str = "validity_rate"
    top: int = Field(5, gt=0)


class LinePlotConfig(StrictModel):
    """A metric against a numeric label (mean ± SEM over seeds), one line per ``hue``."""

    x: str = "loss_weight"
    hue: str = "dataset"
    value: str = "validity_rate"
    where: dict[str, Any] = Field(
        default_factory=dict, description="keep members whose labels equal these values"
    )

    @property
    def name(self) -> str:
        """File stem, e.g. validity_rate_vs_loss_weight_revise."""
        suffix = "".join(f"_{value}" for value in self.where.values())
        return "".join(
            c if c.isalnum() or c in "_-." else "_" for c in f"{self.value}_vs_{self.x}{suffix}"
        )


class ReportConfig(StrictModel):
    """The study report. Labels: dataset, generative, explainer, loss, loss_weight, seed and
    the sweep's dotted keys."""

    rows: list[str] = Field(default_factory=lambda: ["dataset", "loss", "loss_weight"])
    columns: list[str] = Field(default_factory=lambda: ["explainer"])
    metrics: list[str] = Field(default_factory=lambda: ["validity_rate"])
    ranking: RankingConfig | None = None
    line_plots: list[LinePlotConfig] = Field(default_factory=list)
    latent_maps: bool = Field(
        False,
        description="for 2-D data sets, the latent class maps of the study's flows side by side "
        "(first seed), e.g. plain vs path-regularized NICE",
    )
    member_asset: Literal["explanation_metrics", "plots"] = Field(
        "explanation_metrics", description="how far `study run` materializes each member"
    )
    boxplots: list[str] = Field(
        default_factory=list, description="metrics shown as boxplots per explainer, e.g. l1_auc"
    )


class StudyConfig(StrictModel):
    """A study: many experiment configs (partitions) and a report over them."""

    name: str = Field(pattern=NAME_PATTERN, max_length=MAX_NAME_LENGTH)
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    base: list[str] = Field(default_factory=list, description="config files, relative to the study")
    set: dict[str, Any] = Field(default_factory=dict, description="dotted overrides of the base")
    sweep: dict[str, list[Any]] | list[dict[str, list[Any]]] = Field(
        default_factory=dict, description="a grid, or a list of grids whose members are unioned"
    )
    seeds: SeedsConfig | None = None
    report: ReportConfig = ReportConfig()
    slurm: SlurmSettings = neutral(
        SlurmSettings(), "resources of the study's Slurm jobs (its shards); never in a key"
    )


@dataclass(frozen=True)
class StudyMember:
    """One expanded config and the sweep values that produced it (report labels)."""

    resolved: ResolvedConfig
    labels: dict[str, Any]

    @property
    def partition_key(self) -> str:
        return self.resolved.partition_key


@dataclass(frozen=True)
class ResolvedStudy:
    study: StudyConfig
    members: list[StudyMember]

    @property
    def partition_key(self) -> str:
        member_keys = sorted(member.partition_key for member in self.members)
        return f"{self.study.name}-{content_hash([self.study, member_keys])[:8]}"


def is_study_file(path: Path) -> bool:
    """A YAML file with a top-level ``study:`` mapping."""
    return STUDY_KEY in read_yaml(path)


def _grids(sweep: Mapping[str, list[Any]] | list[dict[str, list[Any]]]) -> list[dict]:
    return [dict(sweep)] if isinstance(sweep, Mapping) else [dict(grid) for grid in sweep]


def _grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    combos = itertools.product(*(grid[key] for key in keys))
    return [dict(zip(keys, values, strict=True)) for values in combos]


def _report_problems(study: StudyConfig) -> list[str]:
    """Report labels and metrics that no member will have."""
    labels = {*STANDARD_LABELS, *(key for grid in _grids(study.sweep) for key in grid)}
    report = study.report
    used_labels = [("study.report.rows", report.rows), ("study.report.columns", report.columns)]
    used_metrics = [("study.report.metrics", report.metrics)]
    used_metrics.append(("study.report.boxplots", report.boxplots))
    if report.ranking is not None:
        used_labels.append(("study.report.ranking.group", [report.ranking.group]))
        used_labels.append(("study.report.ranking.items", report.ranking.items))
        used_metrics.append(("study.report.ranking.metric", [report.ranking.metric]))
    for index, plot in enumerate(report.line_plots):
        where = f"study.report.line_plots.{index}"
        used_labels.append((where, [plot.x, plot.hue, *plot.where]))
        used_metrics.append((f"{where}.value", [plot.value]))
    problems = [
        f"{where}: unknown label {name!r}; labels are {', '.join(sorted(labels))}"
        for where, names in used_labels
        for name in names
        if name not in labels
    ]
    problems += [
        f"{where}: unknown metric {name!r}; metrics are {', '.join(METRICS)}"
        for where, names in used_metrics
        for name in names
        if name not in METRICS
    ]
    return problems


def _member_count(study: StudyConfig) -> int:
    seeds = len(study.seeds.values) if study.seeds else 1
    total = 0
    for grid in _grids(study.sweep):
        size = 1
        for values in grid.values():
            size *= len(values)
        total += size
    return total * seeds


def _absolute_paths(overrides: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A relative ``dataset.path`` in a study's ``set`` or ``sweep`` is relative to the study."""
    dotted = overrides.get("dataset.path")
    if isinstance(dotted, str) and dotted and not Path(dotted).expanduser().is_absolute():
        overrides = {**overrides, "dataset.path": str(folder / Path(dotted).expanduser())}
    if "dataset" in overrides:
        overrides = absolute_data_path(overrides, folder)
    return overrides


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (int, str)):
        return str(value)
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def member_words(config: ExperimentConfig, labels: Mapping[str, Any]) -> list[str]:
    """What sets a member apart from the study's other members, in words.

    One word per sweep key and the seed, in the order of ``labels``: a swept section by its
    readable label (``sklearn:wine``, ``revise+l1(0.1)``, ``nice+boundary_cross``), any other
    value as ``<last key part>=<value>`` (``weight=0.1``, ``seed=83810``).
    """
    words = []
    for key, value in labels.items():
        section: Any = config
        for part in key.split("."):
            section = getattr(section, part, None)
        label = getattr(section, "label", None)
        if isinstance(label, str):
            words.append(label)
        else:
            words.append(f"{key.rsplit('.', 1)[-1]}={_scalar_text(value)}")
    return words


def member_description(study: StudyConfig, words: list[str]) -> str:
    """A member's description: the study it belongs to (and what the study is about, quoted:
    true of the study, not of each member) and what sets this member apart."""
    about = f' ("{study.description}")' if study.description else ""
    return f"Member of study {study.name}{about}: {', '.join(words)}."[:MAX_DESCRIPTION_LENGTH]


def _with_member_description(
    resolved: ResolvedConfig, study: StudyConfig, labels: dict[str, Any]
) -> ResolvedConfig:
    """The base file's description describes the base config, not a member that the study's
    set, sweep and seeds changed: it is replaced, unless the study sets one itself."""
    if "description" in study.set or "description" in labels:
        return resolved
    text = member_description(study, member_words(resolved.config, labels))
    config = resolved.config.model_copy(update={"description": text})
    return ResolvedConfig(config, {**resolved.sources, "description": STUDY_DESCRIPTION_SOURCE})


def expand_study(path: Path) -> ResolvedStudy:
    """Validate a study file and every member config (all problems reported together)."""
    from tabs_assets.config.loading import validate_model

    raw = read_yaml(path)
    try:
        study = validate_model(StudyConfig, raw.get(STUDY_KEY) or {}, f"{path}: study")
    except ConfigError as error:  # dotted paths as in the file: study.seeds.values.1
        raise ConfigError(str(path), [f"{STUDY_KEY}.{p}" for p in error.problems]) from None
    base_files = [(path.absolute().parent / name).resolve() for name in study.base]
    problems: list[str] = []
    for index, base in enumerate(base_files):
        try:
            read_yaml(base)
        except ConfigError as error:
            problems += [f"study.base.{index}: {problem}" for problem in error.problems]
    n_members = _member_count(study)
    if n_members > MAX_STUDY_MEMBERS:
        problems.append(
            f"study.sweep: the study expands to {n_members} configs (sweep x seeds); "
            f"at most {MAX_STUDY_MEMBERS} are allowed"
        )
    problems += _report_problems(study)
    if problems:
        raise ConfigError(str(path), problems)
    seeds = study.seeds.values if study.seeds else [None]
    members: dict[str, StudyMember] = {}
    folder = path.absolute().parent
    for point in (p for grid in _grids(study.sweep) for p in _grid_points(grid)):
        for seed in seeds:
            overrides = _absolute_paths({"name": study.name, **study.set, **point}, folder)
            if seed is not None:
                overrides.update({key: seed for key in study.seeds.keys})
            labels = {**point, **({"seed": seed} if seed is not None else {})}
            try:
                resolved = resolve_config(base_files, overrides, origin=f"{path}: {labels}")
            except ConfigError as error:
                problems.extend(f"member {labels}: {p}" for p in error.problems)
                continue
            resolved = _with_member_description(resolved, study, labels)
            members.setdefault(resolved.partition_key, StudyMember(resolved, labels))
    if problems:
        raise ConfigError(str(path), problems)
    if not members:
        raise ConfigError(str(path), ["study.sweep: the study expands to no configs"])
    return ResolvedStudy(study=study, members=list(members.values()))
