"""Figures about trained models: confusion matrix, learning curves."""

from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from tabs_assets.science.plotting.style import new_figure, project_style


def confusion_matrix_figure(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> Figure:
    """Counts per (true, predicted) class, rows normalised for the colour."""
    counts = np.asarray(matrix, dtype=np.int64)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    with project_style():
        size = 1.2 + 0.45 * len(class_names)
        figure = new_figure(size + 0.8, size)
        axes = figure.add_subplot()
        axes.imshow(shares, vmin=0, vmax=1, cmap="Blues")
        axes.grid(False)
        for (row, col), count in np.ndenumerate(counts):
            colour = "white" if shares[row, col] > 0.5 else "black"
            axes.text(col, row, str(count), ha="center", va="center", color=colour, fontsize=7)
        ticks = range(len(class_names))
        axes.set_xticks(ticks, class_names, rotation=45, ha="right")
        axes.set_yticks(ticks, class_names)
        axes.set_xlabel("predicted")
        axes.set_ylabel("true")
        axes.set_title("Confusion matrix (test)")
    return figure


def learning_curves_figure(history: Sequence[dict[str, float]], title: str) -> Figure:
    """Per-epoch train/val losses (and any other per-epoch series)."""
    with project_style():
        figure = new_figure(4.5, 3.2)
        axes = figure.add_subplot()
        epochs = [row["epoch"] for row in history]
        for name in sorted({k for row in history for k in row} - {"epoch"}):
            if name.endswith("loss"):
                axes.plot(epochs, [row.get(name, np.nan) for row in history], label=name)
        axes.set_xlabel("epoch")
        axes.set_ylabel("loss")
        axes.set_title(title)
        axes.legend()
    return figure
