"""Counterfactual paths, the explainers' result: points, latents and predictions of every path,
stored as safetensors + JSON; and the target classes they are drawn towards."""

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

TENSORS_FILE = "paths.safetensors"


META_FILE = "paths.json"


@dataclass
class CounterfactualPaths:
    """Paths for B rows: S points each, in normalised input space (point 0 = the start)."""

    inputs: Tensor  # [B, D]
    sources: Tensor  # [B] classifier prediction for the input
    targets: Tensor  # [B]
    points: Tensor  # [S, B, D] decoded path
    latents: Tensor | None  # [S, B, H]; None for input-space explainers
    logits: Tensor  # [S, B, C] classifier logits along the path
    predictions: Tensor  # [S, B]
    seconds: float  # explainer wall time: sources, latents, decoded points (CUDA synchronised)
    method: str

    @property
    def n_steps(self) -> int:
        return int(self.points.shape[0]) - 1

    @property
    def n_paths(self) -> int:
        return int(self.points.shape[1])

    def save(self, directory: Path) -> None:
        """Tensors as safetensors plus a small JSON; never pickle."""
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {
            "inputs": self.inputs,
            "sources": self.sources,
            "targets": self.targets,
            "points": self.points,
            "logits": self.logits,
            "predictions": self.predictions,
        }
        if self.latents is not None:
            tensors["latents"] = self.latents
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()}, directory / TENSORS_FILE
        )
        meta = {"method": self.method, "seconds": self.seconds, "n_steps": self.n_steps}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> "CounterfactualPaths":
        tensors = load_file(directory / TENSORS_FILE)
        meta = json.loads((directory / META_FILE).read_text())
        return cls(
            inputs=tensors["inputs"],
            sources=tensors["sources"],
            targets=tensors["targets"],
            points=tensors["points"],
            latents=tensors.get("latents"),
            logits=tensors["logits"],
            predictions=tensors["predictions"],
            seconds=float(meta["seconds"]),
            method=str(meta["method"]),
        )


def other_classes(sources: Tensor, n_classes: int, generator: torch.Generator) -> Tensor:
    """The target rule t = (s + U{1..C-1}) mod C: a uniform class that is never the source.

    The offsets are drawn on the CPU ``generator``, so they do not depend on the device.
    """
    offsets = torch.randint(1, n_classes, sources.shape, generator=generator)
    return (sources + offsets.to(sources.device)) % n_classes


def draw_targets(sources: Tensor, n_classes: int, seed: int) -> Tensor:
    """The targets of explained points: ``other_classes`` from a generator seeded with ``seed``.

    Depends only on the sources and the seed, so every method and model of a study is compared
    on the same (point, target) pairs.
    """
    if n_classes < 2:
        raise ValueError(f"targets need at least 2 classes, got {n_classes}")
    return other_classes(sources.cpu().long(), n_classes, torch.Generator().manual_seed(seed))
