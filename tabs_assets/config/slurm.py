"""Slurm resources of a run's jobs: configuration, never part of a cache or partition key.

One schema for every layer, lowest to highest precedence: the deployment file
(``deploy/slurm.yaml``), the ``slurm:`` section of an experiment or study file, the run config
(``execution: config:``). A field left ``None`` in a layer is taken from the layer below; left
``None`` everywhere, the flag is not passed to sbatch and the cluster's default applies.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from tabs_assets.config.base import StrictModel

# A training step (and a study shard, which trains its members' models) asks for this many GPUs
# when no layer says otherwise: one training per GPU is Slurm's guarantee.
DEFAULT_TRAINING_GPUS = 1
SLURM_NAME = r"^[A-Za-z0-9_.,:+-]+$"  # partition, account, qos, GPU type: no spaces or quotes


class SlurmSettings(StrictModel):
    """Resources of the Slurm jobs that run a config's or a study's steps."""

    partition: str | None = Field(None, pattern=SLURM_NAME, description="sbatch --partition")
    account: str | None = Field(None, pattern=SLURM_NAME, description="sbatch --account")
    qos: str | None = Field(None, pattern=SLURM_NAME, description="sbatch --qos")
    time_limit_min: int | None = Field(
        None, gt=0, description="sbatch --time, in minutes, per job (each step, each shard)"
    )
    cpus: int | None = Field(None, gt=0, description="sbatch --cpus-per-task")
    mem_mb: int | None = Field(None, gt=0, description="sbatch --mem, in MB")
    training_gpus: int | None = Field(
        None,
        ge=0,
        description=f"GPUs of each training step and study shard (--gres=gpu:N; default "
        f"{DEFAULT_TRAINING_GPUS}); other steps ask for none",
    )
    gpu_type: str | None = Field(None, pattern=SLURM_NAME, description="--gres=gpu:TYPE:N")
    array_concurrency: int | None = Field(
        None, gt=0, description="a study's shards run at most this many at once (--array=...%N)"
    )
    setup: list[str] | None = Field(
        None,
        description="shell lines each job runs first, e.g. 'module load cuda' (the venv of "
        "the launching process is used by its path)",
    )
    log_dir: str | None = Field(
        None,
        description="job logs (sbatch --output), on a filesystem the nodes share; default "
        "slurm/ in the Dagster instance's folder (.dagster_home/slurm)",
    )


class SlurmSettingsError(ValueError):
    """Invalid Slurm settings: one line per problem, naming the source and the field."""


@dataclass(frozen=True)
class ResolvedSlurm:
    """The settings of one run, and which layer set each field (for messages)."""

    settings: SlurmSettings
    sources: dict[str, str]

    def describe(self, field: str) -> str:
        """``field=value (from SOURCE)`` for a message about ``field``."""
        value = getattr(self.settings, field)
        return f"{field}={value!r} (from {self.sources.get(field, 'the default')})"

    @property
    def training_gpus(self) -> int:
        value = self.settings.training_gpus
        return DEFAULT_TRAINING_GPUS if value is None else value


def parse_layer(data: Any, source: str) -> SlurmSettings:
    """One layer's settings; a problem is a SlurmSettingsError naming ``source`` and the field."""
    if data is None:
        return SlurmSettings()
    if isinstance(data, SlurmSettings):
        return data
    if not isinstance(data, Mapping):
        raise SlurmSettingsError(f"{source}: expected a mapping of Slurm settings, got {data!r}")
    try:
        return SlurmSettings.model_validate(dict(data))
    except ValidationError as error:
        problems = [
            f"{'.'.join(str(part) for part in problem['loc'])}: "
            + (
                "unknown setting (typo?)"
                if problem["type"] == "extra_forbidden"
                else problem["msg"]
            )
            for problem in error.errors()
        ]
        raise SlurmSettingsError(f"Slurm settings in {source}: {'; '.join(problems)}") from None


def resolve(layers: Iterable[tuple[str, SlurmSettings]]) -> ResolvedSlurm:
    """Merge (source, settings) layers, lowest precedence first: a field set higher wins."""
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for source, layer in layers:
        for name in SlurmSettings.model_fields:
            value = getattr(layer, name)
            if value is not None:
                merged[name], sources[name] = value, source
    return ResolvedSlurm(SlurmSettings(**merged), sources)
