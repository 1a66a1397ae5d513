"""Validity-loss diagnostics for 2-D data (SCIENCE.md §7.4, cf_losses).

Loss contours over the input grid (or a 2-D latent grid) with the class map underneath, and
streamplots of where the explainers move: -grad_x L in input space, and the input-space
displacement of one latent gradient step. Gradients are taken in normalised space (where the
explainers work) and drawn in the axes' raw units: a normalised displacement dx becomes
dx * std in raw units.
"""

from typing import Literal

import numpy as np
import torch
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
from torch import nn

from tabs_assets.config.losses import ValidityLossConfig
from tabs_assets.science.datasets.prepared import PreparedDataset
from tabs_assets.science.losses import validity_loss
from tabs_assets.science.plotting.drawing import (
    class_handles,
    draw_classes,
    label_input_axes,
    label_latent_axes,
)
from tabs_assets.science.plotting.evaluation import (
    as_tensor,
    class_logits,
    decoded,
    encoded,
    eval_mode,
    require_2d_latent,
)
from tabs_assets.science.plotting.grids import Grid, input_grid, latent_grid
from tabs_assets.science.plotting.style import new_figure, project_style

CONTOUR_LEVELS = 14
STREAM_DENSITY = 1.1
MAGNITUDE_FLOOR = 1e-12
# magma without its palest end, which vanishes on the light class colours.
STREAM_COLOURS = ListedColormap(colormaps["magma"](np.linspace(0.0, 0.8, 256)))


def loss_label(loss_config: ValidityLossConfig) -> str:
    return loss_config.label


def pair_title(
    data: PreparedDataset, loss_config: ValidityLossConfig, source: int, target: int
) -> str:
    names = data.class_names
    return f"{loss_label(loss_config)}: {names[source]} → {names[target]}"


def grid_loss(
    logits: torch.Tensor, source: int, target: int, loss_config: ValidityLossConfig
) -> torch.Tensor:
    """Per-point loss [N] for logits [N, C] and one fixed (source, target) pair."""
    labels = torch.full(logits.shape[:-1], source, dtype=torch.long)
    return validity_loss(logits, labels, torch.full_like(labels, target), loss_config)


def loss_contours_figure(
    data: PreparedDataset,
    classifier: nn.Module,
    loss_config: ValidityLossConfig,
    source: int,
    target: int,
    space: Literal["input", "latent"] = "input",
    generative: nn.Module | None = None,
    resolution: int = 200,
    latent_range: float = 5.0,
) -> Figure:
    """Contours of the validity loss over the input grid or the latent grid [-r, r]²."""
    if space == "latent":
        if generative is None:
            raise ValueError("latent loss contours need a generative model")
        require_2d_latent(generative, data, "latent loss contours")
        grid = latent_grid(resolution, latent_range)
        points = decoded(generative, grid.points)
    elif space == "input":
        grid = input_grid(data, resolution)
        points = as_tensor(grid.points)
    else:
        raise ValueError(f"space must be 'input' or 'latent', got {space!r}")
    with torch.no_grad():
        logits = class_logits(classifier, points)
        loss = grid_loss(logits, source, target, loss_config).numpy()
    with project_style():
        figure = new_figure(6.2, 4.6)
        axes = figure.add_subplot()
        draw_classes(axes, grid, logits.argmax(-1).numpy(), data.n_classes, alpha=0.3)
        contours = axes.contour(
            grid.x0, grid.x1, grid.image(loss), levels=CONTOUR_LEVELS, cmap="viridis", linewidths=1
        )
        axes.clabel(contours, fontsize=6, fmt="%.3g")
        figure.colorbar(contours, ax=axes, label="loss")
        if space == "latent":
            label_latent_axes(axes, grid)
        else:
            label_input_axes(axes, data, grid)
        axes.set_title(f"{space} space — {pair_title(data, loss_config, source, target)}")
        figure.legend(handles=class_handles(data.class_names, 0.3), loc="outside right upper")
    return figure


def input_gradients(
    classifier: nn.Module,
    points: np.ndarray,
    source: int,
    target: int,
    loss_config: ValidityLossConfig,
) -> np.ndarray:
    """grad_x L at normalised points [N, D] (rows independent, so grad of the sum): [N, D]."""
    x = as_tensor(points).requires_grad_(True)
    with torch.enable_grad(), eval_mode(classifier):
        loss = grid_loss(classifier(x), source, target, loss_config).sum()
        (gradient,) = torch.autograd.grad(loss, x)
    return gradient.numpy()


def latent_step_displacement(
    classifier: nn.Module,
    generative: nn.Module,
    points: np.ndarray,
    source: int,
    target: int,
    loss_config: ValidityLossConfig,
    step_size: float,
) -> np.ndarray:
    """Dec(z - eta grad_z L) - Dec(z) with z = Enc(x), normalised: [N, D]."""
    z = encoded(generative, points).requires_grad_(True)
    with torch.enable_grad(), eval_mode(classifier, generative):
        loss = grid_loss(classifier(generative.decode(z)), source, target, loss_config).sum()
        (gradient,) = torch.autograd.grad(loss, z)
    z = z.detach()
    return (decoded(generative, z - step_size * gradient) - decoded(generative, z)).numpy()


def draw_stream(axes: Axes, grid: Grid, displacement: np.ndarray, std: np.ndarray) -> object:
    """Streamlines of a normalised displacement field, converted to raw units (first 2 dims)."""
    raw = displacement[:, :2] * std[:2]
    u, v = grid.image(raw[:, 0]), grid.image(raw[:, 1])
    magnitude = np.maximum(np.hypot(u, v), MAGNITUDE_FLOOR)
    low, high = np.percentile(magnitude, [2, 98])
    stream = axes.streamplot(
        grid.x0,
        grid.x1,
        u,
        v,
        color=magnitude,
        cmap=STREAM_COLOURS,
        norm=LogNorm(max(low, MAGNITUDE_FLOOR), max(high, low * 10, MAGNITUDE_FLOOR * 10)),
        density=STREAM_DENSITY,
        linewidth=0.8,
        arrowsize=0.8,
    )
    return stream.lines


def gradient_stream_figure(
    data: PreparedDataset,
    classifier: nn.Module,
    loss_config: ValidityLossConfig,
    source: int,
    target: int,
    generative: nn.Module | None = None,
    step_size: float = 0.01,
    resolution: int = 200,
) -> Figure:
    """Streamplots of -grad_x L and (with a generative model) of one latent step's displacement.

    Both are drawn over the input grid in raw units, coloured by the step length (raw units per
    unit step for -grad_x L, raw units for the latent step of size ``step_size``).
    """
    grid = input_grid(data, resolution)
    classes = class_logits(classifier, grid.points).argmax(-1).numpy()
    gradient = input_gradients(classifier, grid.points, source, target, loss_config)
    fields = [(r"input space: $-\nabla_x L$", -gradient)]
    if generative is not None:
        displacement = latent_step_displacement(
            classifier, generative, grid.points, source, target, loss_config, step_size
        )
        title = rf"one latent step: Dec$(z - {step_size:g}\,\nabla_z L)$ − Dec$(z)$"
        fields.append((title, displacement))
    with project_style():
        figure = new_figure(0.9 + 4.4 * len(fields), 4.3)
        units = ["step per unit step size (raw units)", "step length (raw units)"]
        for index, ((title, field), unit) in enumerate(zip(fields, units, strict=False)):
            axes = figure.add_subplot(1, len(fields), index + 1)
            draw_classes(axes, grid, classes, data.n_classes, alpha=0.25)
            lines = draw_stream(axes, grid, field, data.std)
            colorbar = figure.colorbar(lines, ax=axes, label=unit, location="bottom")
            # Short plain labels at 1-2-5 steps: the default scientific minor labels collide.
            colorbar.ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            colorbar.ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))
            colorbar.ax.xaxis.set_minor_formatter(NullFormatter())
            label_input_axes(axes, data, grid)
            axes.set_title(title)
        figure.suptitle(pair_title(data, loss_config, source, target))
        figure.legend(handles=class_handles(data.class_names, 0.25), loc="outside right upper")
    return figure
