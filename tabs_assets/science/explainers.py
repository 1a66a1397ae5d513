"""Counterfactual path explainers (SCIENCE.md §4): Latent Shift, REVISE, Wachter.

Every explainer is batched: one call explains a whole split in chunks of rows, each chunk with
whole-tensor operations (no per-row Python loop), and every path has exactly S = n_steps + 1
points, point 0 being the start. Gradients are taken with ``torch.autograd.grad`` with respect
to the latents only, so nothing ever accumulates into model parameters.

Fixes of the research code kept visible here (SCIENCE.md §9): the REVISE loss is evaluated at the
current latent (not at the original input), its distance term is really applied, the one-shot
Latent Shift builds its [S, B, H] latents by broadcasting (no scrambled reshape), and every path
has the same number of points.

The distance term of REVISE and Wachter is a smooth L1 (pseudo-Huber) by default: at z0,
Dec(E(x)) - x is rounding noise, and the subgradient sign(d) of |d| turns that noise into a full
unit pull in an arbitrary direction, so the plain L1 makes the paths chaotic (a 1e-7 change of
the input moved points by tens of units). sqrt(d^2 + s^2) - s has the gradient d / sqrt(d^2 + s^2),
which is ~d/s near 0 (noise stays noise) and ~sign(d) beyond s (the L1 pull of REVISE). The plain
subgradient stays available as ``distance: l1_subgradient``.
"""

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from tabs_assets.config.explainers import (
    DistanceKind,
    ExplainerConfig,
    LatentShiftConfig,
    ReviseConfig,
    SourceMode,
    ThresholdSearchConfig,
    WachterConfig,
)
from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.evaluation import evaluating
from tabs_assets.science.losses import pick, validity_loss

TENSORS_FILE = "paths.safetensors"
META_FILE = "paths.json"
ProgressCallback = Callable[[int, int], None]
"""Called after each chunk with (rows done, rows in total)."""


class Codec(Protocol):
    """What an explainer needs from a generative model."""

    def encode(self, x: Tensor) -> Tensor: ...

    def decode(self, z: Tensor) -> Tensor: ...


class InputSpace(nn.Module):
    """The identity codec of explainers that do not work in latent space (Wachter)."""

    def encode(self, x: Tensor) -> Tensor:
        return x

    def decode(self, z: Tensor) -> Tensor:
        return z


# --------------------------------------------------------------------------------------------
# Paths


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


# --------------------------------------------------------------------------------------------
# The math of one chunk (tensors already on the models' device)


def _as_variable(z: Tensor, differentiable: bool) -> Tensor:
    """A latent to differentiate with respect to; keeps the graph to the models only if asked."""
    if differentiable and z.requires_grad:
        return z
    return z.detach().requires_grad_(True)


def distance_term(difference: Tensor, kind: DistanceKind, scale: float) -> Tensor:
    """Per-row distance [...] of ``difference`` [..., D]: smooth L1 with scale s, or plain L1.

    smooth_l1: sum_j sqrt(d_j^2 + s^2) - s, 0 at d = 0, within s of |d| per coordinate.
    """
    if kind == "l1_subgradient":
        return difference.abs().sum(-1)
    return (torch.sqrt(difference * difference + scale * scale) - scale).sum(-1)


@dataclass(frozen=True)
class _Distance:
    """lambda_d and the form of the distance term (weight 0: no term)."""

    weight: float = 0.0
    kind: DistanceKind = "smooth_l1"
    scale: float = 0.03


def _objective(
    z: Tensor,
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    loss: ValidityLossConfig,
    source_mode: SourceMode,
    distance: _Distance = _Distance(),
) -> Tensor:
    """Per-row L(f(Dec(z))) + lambda_d * dist(Dec(z) - x), evaluated at the CURRENT z: [B]."""
    points = codec.decode(z)
    logits = classifier(points)
    source = logits.argmax(-1) if source_mode == "current" else sources
    value = validity_loss(logits, source, targets, loss)
    if distance.weight:
        value = value + distance.weight * distance_term(
            points - inputs, distance.kind, distance.scale
        )
    return value


def _gradient(objective: Callable[[Tensor], Tensor], z: Tensor, differentiable: bool) -> Tensor:
    """grad_z sum_b objective(z)_b (rows are independent, so this is the per-row gradient)."""
    z = _as_variable(z, differentiable)
    with torch.enable_grad():
        (gradient,) = torch.autograd.grad(objective(z).sum(), z, create_graph=differentiable)
    return gradient


def _unit_rows(gradient: Tensor) -> Tensor:
    """g / ||g|| per row; a zero gradient stays zero."""
    norm = gradient.norm(dim=-1, keepdim=True)
    return gradient / torch.where(norm > 0, norm, torch.ones_like(norm))


def _search_shifts(
    z0: Tensor,
    gradient: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    step_size: float,
    search: ThresholdSearchConfig,
) -> Tensor:
    """Per-row lambda*: the first step_size * growth^k (capped at max_shift) with p_t >= threshold.

    All candidate shifts are decoded in one [K, B, H] call; rows that never cross get max_shift.
    The search is a discrete choice, so it carries no gradient.
    """
    n_tries = max(0, math.ceil(math.log(search.max_shift / step_size) / math.log(search.growth)))
    candidates = step_size * search.growth ** torch.arange(n_tries + 1, dtype=torch.float64)
    candidates = candidates.clamp(max=search.max_shift).to(device=z0.device, dtype=z0.dtype)
    with torch.no_grad():
        shifted = z0.detach() - candidates[:, None, None] * gradient.detach()
        probabilities = torch.softmax(classifier(codec.decode(shifted)), dim=-1)
        crossed = pick(probabilities, targets) >= search.threshold  # [K, B]
    first = crossed.int().argmax(0)  # index of the first crossing (0 when none)
    return torch.where(crossed.any(0), candidates[first], candidates.new_tensor(search.max_shift))


def _latent_shift(
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    config: LatentShiftConfig,
    loss: ValidityLossConfig,
    differentiable: bool,
) -> Tensor:
    """z_i = z0 - shift_i * g for i = 0..M with one gradient at z0: latents [S, B, H]."""
    z0 = _as_variable(codec.encode(inputs), differentiable)

    def objective(z: Tensor) -> Tensor:
        return _objective(z, inputs, sources, targets, classifier, codec, loss, config.source)

    gradient = _gradient(objective, z0, differentiable)
    if config.normalize_gradient:
        gradient = _unit_rows(gradient)
    n_points = config.n_steps + 1
    if config.threshold_search is None:
        steps = torch.arange(n_points, device=z0.device, dtype=z0.dtype)
        shifts = (steps * config.step_size)[:, None]  # [S, 1]: the same for every row
    else:
        largest = _search_shifts(
            z0, gradient, targets, classifier, codec, config.step_size, config.threshold_search
        )
        fractions = torch.linspace(0.0, 1.0, n_points, device=z0.device, dtype=z0.dtype)
        shifts = fractions[:, None] * largest[None, :]  # [S, B]: frames spread over [0, lambda*]
    if not differentiable:
        z0 = z0.detach()
    return z0[None] - shifts[..., None] * gradient[None]


class _SgdStep:
    """z - eta * g (out of place, so it keeps a graph when one is wanted)."""

    def __init__(self, step_size: float) -> None:
        self.step_size = step_size

    def __call__(self, z: Tensor, gradient: Tensor) -> Tensor:
        return z - self.step_size * gradient


class _TorchAdamStep:
    """torch.optim.Adam over the latent tensor, lr = step_size."""

    def __init__(self, z0: Tensor, step_size: float) -> None:
        self.z = z0.detach().clone()
        self.optimizer = torch.optim.Adam([self.z], lr=step_size)

    def __call__(self, z: Tensor, gradient: Tensor) -> Tensor:
        self.z.grad = gradient.detach()
        self.optimizer.step()
        return self.z.detach().clone()


class _FunctionalAdamStep:
    """The update of torch.optim.Adam (default betas/eps), out of place so it stays differentiable.

    Only used when the latents must carry a graph to the generative model (path regularisation
    with ``detach_latents`` False): torch's optimiser updates leaves in place.
    """

    def __init__(self, step_size: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
        self.step_size, self.betas, self.eps = step_size, betas, 1e-8
        self.first: Tensor | float = 0.0
        self.second: Tensor | float = 0.0
        self.count = 0

    def __call__(self, z: Tensor, gradient: Tensor) -> Tensor:
        beta1, beta2 = self.betas
        self.count += 1
        self.first = beta1 * self.first + (1 - beta1) * gradient
        self.second = beta2 * self.second + (1 - beta2) * gradient * gradient
        correction1 = 1 - beta1**self.count
        correction2 = math.sqrt(1 - beta2**self.count)
        denominator = self.second.sqrt() / correction2 + self.eps
        return z - (self.step_size / correction1) * self.first / denominator


def _descent(
    inputs: Tensor,
    sources: Tensor,
    targets: Tensor,
    classifier: nn.Module,
    codec: Codec,
    config: ReviseConfig | WachterConfig,
    loss: ValidityLossConfig,
    differentiable: bool,
) -> Tensor:
    """REVISE / Wachter: z <- z - eta * grad[L(f(Dec(z))) + lambda_d dist(Dec(z) - x)]: [S, B, H].

    A new gradient every ``gradient_every`` steps, the last one reused in between.
    """
    z = codec.encode(inputs)
    if not differentiable:
        z = z.detach()
    if config.optimizer == "sgd":
        step: Callable[[Tensor, Tensor], Tensor] = _SgdStep(config.step_size)
    elif differentiable:
        step = _FunctionalAdamStep(config.step_size)
    else:
        step = _TorchAdamStep(z, config.step_size)

    def objective(latent: Tensor) -> Tensor:
        return _objective(
            latent,
            inputs,
            sources,
            targets,
            classifier,
            codec,
            loss,
            config.source,
            _Distance(config.distance_weight, config.distance, config.distance_scale),
        )

    latents = [z]
    gradient = torch.zeros_like(z)
    for index in range(config.n_steps):
        if index % config.gradient_every == 0:
            gradient = _gradient(objective, z, differentiable)
        z = step(z, gradient)
        latents.append(z)
    return torch.stack(latents)


# The search of each explainer.method (what each can do is on its config: config/explainers.py).
_SEARCHES: dict[str, Callable[..., Tensor]] = {
    "latent_shift": _latent_shift,
    "revise": _descent,
    "wachter": _descent,
}


def _codec(explainer: ExplainerConfig, generative: nn.Module | None) -> Codec:
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
    codec = _codec(explainer, generative)
    compute = _SEARCHES[explainer.method]
    return compute(inputs, sources, targets, classifier, codec, explainer, loss, differentiable)


# --------------------------------------------------------------------------------------------
# The whole split


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
        points = _codec(explainer, generative).decode(latents)  # one [S, B, H] call
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
