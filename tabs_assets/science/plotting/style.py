"""The project matplotlib style and figure export. Uses the Agg backend: no display needed."""

import io
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

PROJECT_STYLE = {
    "text.usetex": False,  # a LaTeX install must never be required (SCIENCE.md §9)
    "mathtext.fontset": "dejavusans",
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
    "savefig.dpi": 120,
    "savefig.bbox": "tight",
    "image.cmap": "viridis",
}
CLASS_COLORS = ["#1f77b4", "#2ca02c", "#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"]


@contextmanager
def project_style() -> Iterator[None]:
    with plt.rc_context(PROJECT_STYLE):
        yield


def new_figure(width: float = 4.0, height: float = 3.5) -> Figure:
    """A figure not registered with pyplot's global state (safe in long-running workers)."""
    return Figure(figsize=(width, height), layout="constrained")


def figure_bytes(figure: Figure, fmt: str = "png", dpi: int | None = None) -> bytes:
    """The figure as PNG/SVG bytes, saved under the project style (its dpi and tight bbox)."""
    buffer = io.BytesIO()
    with project_style():
        figure.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()
