"""Figures about counterfactual paths that work for any data set width."""

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import PercentFormatter

from tabs_assets.science.explainers.paths import CounterfactualPaths
from tabs_assets.science.metrics import valid_paths
from tabs_assets.science.plotting.drawing import class_palette
from tabs_assets.science.plotting.style import new_figure, project_style

CURVE_LABELS = {
    "l1": "L1 distance to the input (normalised)",
    "lof": "LOF score (≈1: inlier)",
}
"""The keys ``metrics.per_step_curves`` returns, first and in this order."""


def path_metric_curves_figure(curves: Mapping[str, np.ndarray]) -> Figure:
    """Mean per-step curves along the paths, x = linspace(0, 1, S): one panel per curve."""
    names = [name for name in CURVE_LABELS if name in curves]
    names += sorted(set(curves) - set(CURVE_LABELS))
    with project_style():
        figure = new_figure(0.6 + 3.4 * max(len(names), 1), 3.0)
        if not names:
            axes = figure.add_subplot()
            axes.text(0.5, 0.5, "no curves", ha="center", va="center", transform=axes.transAxes)
        for index, name in enumerate(names):
            values = np.asarray(curves[name], dtype=np.float64).ravel()
            axes = figure.add_subplot(1, len(names), index + 1)
            axes.plot(
                np.linspace(0.0, 1.0, len(values)), values, marker="." if len(values) < 30 else ""
            )
            if name == "lof":
                axes.axhline(1.0, color="grey", lw=0.8, ls="--")
            axes.set_xlabel("position along the path")
            axes.set_ylabel(CURVE_LABELS.get(name, name))
            axes.set_xlim(0.0, 1.0)
        figure.suptitle("Mean over all paths at each step")
    return figure


def validity_per_target_figure(paths: CounterfactualPaths, class_names: Sequence[str]) -> Figure:
    """Share of paths that reach their target, per target class (n per bar annotated)."""
    n_classes = len(class_names)
    targets = paths.targets.numpy()
    valid = valid_paths(paths.predictions, paths.targets).numpy().astype(np.float64)
    totals = np.bincount(targets, minlength=n_classes)
    reached = np.bincount(targets, weights=valid, minlength=n_classes)
    shares = np.divide(reached, totals, out=np.zeros(n_classes), where=totals > 0)
    positions = np.arange(n_classes)
    with project_style():
        figure = new_figure(min(max(3.6, 1.6 + 0.55 * n_classes), 9.5), 3.2)
        axes = figure.add_subplot()
        axes.bar(positions, shares, color=class_palette(n_classes))
        axes.grid(axis="x", visible=False)
        axes.set_axisbelow(True)
        for position, share, done, total in zip(positions, shares, reached, totals, strict=True):
            text = f"{int(done)}/{int(total)}" if total else "n=0"
            axes.text(position, share + 0.02, text, ha="center", va="bottom", fontsize=7)
        axes.set_xticks(
            positions,
            class_names,
            rotation=30 if n_classes > 4 else 0,
            ha="right" if n_classes > 4 else "center",
        )
        axes.set_ylim(0.0, 1.12)
        axes.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
        axes.set_xlabel("target class")
        axes.set_ylabel("valid paths")
        overall = valid.mean() if len(valid) else float("nan")
        axes.set_title(f"Validity per target ({paths.method}, all: {overall:.1%})")
    return figure
