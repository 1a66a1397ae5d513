"""A trained model as data: weights + the spec to rebuild it, stored without pickle."""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from tabs_assets.science.models.autoencoders import Autoencoder, Vae
from tabs_assets.science.models.classifier import MLPClassifier
from tabs_assets.science.models.nice import Nice

ModelKind = Literal["classifier", "nice", "ae", "vae"]
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"
FORMAT_VERSION = 1


def build_module(kind: ModelKind, spec: dict[str, Any]) -> nn.Module:
    """A freshly initialised nn.Module of ``kind`` from a spec (config fields + derived sizes)."""
    if kind == "classifier":
        return MLPClassifier(
            spec["input_dim"],
            spec["n_classes"],
            spec["hidden"],
            spec["dropout"],
            spec["batch_norm"],
        )
    if kind == "nice":
        return Nice(spec["input_dim"], spec["coupling_layers"], spec["hidden"], spec["prior"])
    if kind == "ae":
        return Autoencoder(spec["input_dim"], spec["latent_dim"], spec["hidden"])
    if kind == "vae":
        return Vae(spec["input_dim"], spec["latent_dim"], spec["hidden"], spec["beta"])
    raise ValueError(f"unknown model kind {kind!r}; expected classifier, nice, ae or vae")


@dataclass
class TrainedModel:
    """Best-validation weights, the spec to rebuild the module, history and test metrics.

    ``history`` has one row per epoch ({"epoch", "train_loss", "val_loss", ...}, 0-based epochs);
    ``best_epoch`` is the epoch whose weights are kept.
    """

    kind: ModelKind
    spec: dict[str, Any]
    state_dict: dict[str, torch.Tensor]
    history: list[dict[str, float]] = field(default_factory=list)
    test_metrics: dict[str, Any] = field(default_factory=dict)
    best_epoch: int = -1

    def build(self) -> nn.Module:
        """The nn.Module with these weights, on the CPU, in eval mode."""
        module = build_module(self.kind, self.spec)
        module.load_state_dict(self.state_dict)
        return module.cpu().eval()

    def save(self, directory: Path) -> None:
        """Write ``weights.safetensors`` and ``model.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        weights = {name: t.detach().cpu().contiguous() for name, t in self.state_dict.items()}
        save_file(weights, directory / WEIGHTS_FILE)
        meta = {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "spec": self.spec,
            "history": self.history,
            "test_metrics": self.test_metrics,
            "best_epoch": self.best_epoch,
        }
        (directory / META_FILE).write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> "TrainedModel":
        """Read a model written by ``save`` (safetensors + JSON: no code is unpickled)."""
        directory = Path(directory)
        meta = json.loads((directory / META_FILE).read_text())
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory / META_FILE}: model format {meta.get('format_version')!r} is not "
                f"{FORMAT_VERSION}; retrain the model"
            )
        return cls(
            kind=meta["kind"],
            spec=meta["spec"],
            state_dict=load_file(directory / WEIGHTS_FILE, device="cpu"),
            history=meta["history"],
            test_metrics=meta["test_metrics"],
            best_epoch=meta["best_epoch"],
        )
