"""Explaining a whole split: the search of each explainer, chunked rows on one device, timing."""

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from tabs_assets.config.explainers import (
    ExplainerConfig,
)
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.evaluation import evaluating
from tabs_assets.science.explainers.descent import descent
from tabs_assets.science.explainers.latent_shift import latent_shift
from tabs_assets.science.explainers.objective import Codec, InputSpace
from tabs_assets.science.explainers.paths import CounterfactualPaths

ProgressCallback = Callable[[int, int], None]
"""Called after each chunk with (rows done, rows in total)."""


# The search of each explainer.method (what each can do is on its config: config/explainers.py).
SEARCHES: dict[str, Callable[..., Tensor]] = {
    "latent_shift": latent_shift,
    "revise": descent,
    "wachter": descent,
}


def codec_for(explainer: ExplainerConfig, generative: nn.Module | None) -> Codec:
    """The generative model, or the identity for input-space explainers."""
    if not explainer.works_in_latent_space:
        return InputSpace()  # e.g. Wachter: any generative model is ignored
    if generative is None:
        raise ValueError(f"explainer.method = {explainer.method!r} needs a generative model")
    return generative  # type: ignore[return-value]


def path_latents(
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    generative: nn.Module | None,
    explainer: ExplainerConfig,
    loss: ValidityLossConfig,
    differentiable: bool = False,
) -> Tensor:
    """Latents [S, B, H] of the paths for one chunk (input-space points for Wachter).

    Runs on whatever device the tensors and models are on, in whatever mode the models are in.
    ``differentiable`` keeps the graph to the generative model's parameters (create_graph), for
    path-regularized training; otherwise the result is detached.
    """
    codec = codec_for(explainer, generative)
    compute = SEARCHES[explainer.method]
    return compute(inputs, sources, targets, classifier, codec, explainer, loss, differentiable)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Chunk:
    sources: Tensor
    points: Tensor
    latents: Tensor | None
    logits: Tensor
    seconds: float


def _explain_chunk(
    inputs: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    generative: nn.Module | None,
    explainer: ExplainerConfig,
    loss: ValidityLossConfig,
    largest_target: int,
) -> _Chunk:
    """Paths of one chunk; ``seconds`` times the explainer (sources, latents, decoded points).

    Classifying the path points afterwards is evaluation, so it stays out of the timing.
    """
    device = inputs.device
    _synchronize(device)
    start = time.perf_counter()
    with torch.no_grad():
        logits0 = classifier(inputs)
    if largest_target >= logits0.shape[-1]:
        raise ValueError(f"targets must lie in 0..{logits0.shape[-1] - 1}, got {largest_target}")
    sources = logits0.argmax(-1)
    latents = path_latents(inputs, sources, targets, classifier, generative, explainer, loss)
    with torch.no_grad():
        points = codec_for(explainer, generative).decode(latents)  # one [S, B, H] call
    _synchronize(device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        logits = classifier(points)
    in_latent_space = explainer.works_in_latent_space
    return _Chunk(
        sources=sources.cpu(),
        points=points.cpu(),
        latents=latents.cpu() if in_latent_space else None,
        logits=logits.cpu(),
        seconds=seconds,
    )


def explain(
    inputs: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    generative: nn.Module | None,
    explainer: ExplainerConfig,
    loss: ValidityLossConfig,
    chunk_size: int = 4096,
    device: torch.device | None = None,
    progress: ProgressCallback | None = None,
) -> CounterfactualPaths:
    """Counterfactual paths for every row of ``inputs`` [B, D] towards ``targets`` [B].

    Rows are processed ``chunk_size`` at a time (memory only: results do not depend on it).
    The source of each row is the classifier's prediction for the input; with ``source:
    current`` the loss uses the prediction at the current point instead. Models run in eval mode
    on ``device`` (default: CUDA when available) and are restored afterwards; results are on
    the CPU. Wachter ignores ``generative``. ``seconds`` is the explainer's own wall time
    (CUDA synchronised): computing the paths, not classifying their points afterwards.
    """
    if inputs.dim() != 2 or targets.shape != inputs.shape[:1]:
        raise ValueError(
            "inputs must be [B, D] and targets [B], "
            f"got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    device = device or default_device()
    if not explainer.needs_generative_model:
        generative = None
    n_rows = len(inputs)
    largest_target = int(targets.max()) if n_rows else -1  # checked against C without a sync
    if n_rows and int(targets.min()) < 0:
        raise ValueError(f"targets must be class indices >= 0, got {int(targets.min())}")
    chunks: list[_Chunk] = []
    with evaluating(classifier, generative, device=device):
        for begin in range(0, max(n_rows, 1), chunk_size):
            rows = slice(begin, begin + chunk_size)
            chunk_inputs = inputs[rows].to(device=device, dtype=torch.float32)
            chunk_targets = targets[rows].to(device=device, dtype=torch.long)
            chunks.append(
                _explain_chunk(
                    chunk_inputs,
                    chunk_targets,
                    classifier,
                    generative,
                    explainer,
                    loss,
                    largest_target,
                )
            )
            if progress is not None:
                progress(min(begin + chunk_size, n_rows), n_rows)
    logits = torch.cat([chunk.logits for chunk in chunks], dim=1)
    latents = [chunk.latents for chunk in chunks]
    return CounterfactualPaths(
        inputs=inputs.detach().cpu().float(),
        sources=torch.cat([chunk.sources for chunk in chunks]),
        targets=targets.detach().cpu().long(),
        points=torch.cat([chunk.points for chunk in chunks], dim=1),
        latents=None if latents[0] is None else torch.cat(latents, dim=1),
        logits=logits,
        predictions=logits.argmax(-1),
        seconds=sum(chunk.seconds for chunk in chunks),
        method=explainer.method,
    )
