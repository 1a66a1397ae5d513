"""tabs_assets.science.plotting (SCIENCE.md §7, §8): every figure renders at the expected size.

For 2-D and for wide data; config_figures picks the right set; no LaTeX; small numeric helpers.
"""

import io
import struct
from collections.abc import Callable
from dataclasses import dataclass

import matplotlib as mpl
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from torch import Tensor, nn

from tabs_assets.config.datasets import CakeOnSeaConfig, SklearnDatasetConfig
from tabs_assets.config.experiment import MetricsConfig, PlotsConfig
from tabs_assets.config.explainers import LatentShiftConfig
from tabs_assets.config.losses import GeneralValidityLoss
from tabs_assets.science.datasets.cake_on_sea import CORRELATION_KEY, make_cake_on_sea
from tabs_assets.science.datasets.prepared import PreparedDataset, prepare_dataset
from tabs_assets.science.datasets.sklearn_data import load_sklearn_dataset
from tabs_assets.science.explainers.explain import explain
from tabs_assets.science.explainers.paths import CounterfactualPaths, draw_targets
from tabs_assets.science.metrics import per_step_curves
from tabs_assets.science.models.trained import TrainedModel, build_module
from tabs_assets.science.plotting.config_figures import common_pair, config_figures
from tabs_assets.science.plotting.grids import (
    covering_bounds,
    example_path_inputs,
    full_width,
    is_planar,
    raw_bounds,
    spread_indices,
)
from tabs_assets.science.plotting.losses import gradient_stream_figure, loss_contours_figure
from tabs_assets.science.plotting.maps import (
    class_map_figure,
    latent_map_figure,
    latent_maps_figure,
    probability_map_figure,
    round_trip_figure,
)
from tabs_assets.science.plotting.paths import (
    path_metric_curves_figure,
    validity_per_target_figure,
)
from tabs_assets.science.plotting.studies import method_boxplots_figure, validity_vs_weight_figure
from tabs_assets.science.records import Record

DPI = 120
MAX_WIDTH_PX = 1200
RESOLUTION = 40  # small grids keep the tests fast; the drawing code is the same
LOSS = GeneralValidityLoss()
EXPLAINER = LatentShiftConfig(n_steps=5)
CPU = torch.device("cpu")
TWO_D_FIGURES = {
    "class_map",
    "probability_map",
    "round_trip_map",
    "loss_contours",
    "gradient_stream",
}
WIDTH_INDEPENDENT = {
    "classifier_learning_curves",
    "generative_learning_curves",
    "path_metric_curves",
    "validity_per_target",
}


@dataclass
class Case:
    """A data set with tiny untrained models, paths and their per-step curves."""

    data: PreparedDataset
    classifier_model: TrainedModel
    generative_model: TrainedModel
    paths: CounterfactualPaths
    curves: dict[str, np.ndarray]

    @property
    def classifier(self) -> nn.Module:
        return self.classifier_model.build()

    @property
    def generative(self) -> nn.Module:
        return self.generative_model.build()


HISTORY = [
    {"epoch": 0, "train_loss": 1.0, "val_loss": 1.1},
    {"epoch": 1, "train_loss": 0.7, "val_loss": 0.8},
]


def tiny_models(data: PreparedDataset) -> tuple[TrainedModel, TrainedModel]:
    torch.manual_seed(0)
    classifier_spec = {
        "input_dim": data.input_dim,
        "n_classes": data.n_classes,
        "hidden": [16],
        "dropout": 0.0,
        "batch_norm": False,
    }
    nice_spec = {
        "input_dim": data.input_dim,
        "coupling_layers": 2,
        "hidden": [8],
        "prior": "gaussian",
    }
    models = []
    for kind, spec in (("classifier", classifier_spec), ("nice", nice_spec)):
        state = build_module(kind, spec).state_dict()
        models.append(TrainedModel(kind, spec, state, history=list(HISTORY)))
    return models[0], models[1]


def make_case(data: PreparedDataset) -> Case:
    classifier_model, generative_model = tiny_models(data)
    classifier, generative = classifier_model.build(), generative_model.build()
    features, _ = data.split_arrays("test")
    inputs = torch.from_numpy(features[:30])
    with torch.no_grad():
        sources = classifier(inputs).argmax(-1)
    targets = draw_targets(sources, data.n_classes, seed=0)
    paths = explain(inputs, targets, classifier, generative, EXPLAINER, LOSS, device=CPU)
    train = torch.from_numpy(data.split_arrays("train")[0])
    curves = per_step_curves(paths, train, MetricsConfig(lof_max_train_rows=300), seed=0)
    return Case(data, classifier_model, generative_model, paths, curves)


def cake(n_dims: int) -> PreparedDataset:
    config = CakeOnSeaConfig(n_points=3000, n_dims=n_dims)
    return prepare_dataset(make_cake_on_sea(config), config.split)


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    wine = SklearnDatasetConfig(name="wine")
    return {
        "cake2": make_case(cake(2)),
        "cake4": make_case(cake(4)),
        "wine": make_case(prepare_dataset(load_sklearn_dataset(wine), wine.split)),
    }


def png_size(figure: Figure) -> tuple[int, int]:
    """Render at DPI without a tight bbox; the (width, height) from the PNG header."""
    buffer = io.BytesIO()
    with mpl.rc_context({"savefig.bbox": "standard"}):
        figure.savefig(buffer, format="png", dpi=DPI)
    data = buffer.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 2000, "suspiciously small PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def assert_png(figure: Figure) -> None:
    width, height = png_size(figure)
    expected = np.round(figure.get_size_inches() * DPI)
    assert abs(width - expected[0]) <= 2 and abs(height - expected[1]) <= 2
    assert width <= MAX_WIDTH_PX + 2


def map_figures(case: Case, with_latent: bool) -> list[Callable[[], Figure]]:
    data, classifier, generative = case.data, case.classifier, case.generative
    builders: list[Callable[[], Figure]] = [
        lambda: class_map_figure(data, classifier, case.paths, 10, RESOLUTION),
        lambda: class_map_figure(data, classifier, None, resolution=RESOLUTION),
        lambda: probability_map_figure(data, classifier, RESOLUTION),
        lambda: probability_map_figure(data, classifier, RESOLUTION, per_class=True),
        lambda: round_trip_figure(data, generative, RESOLUTION),
        lambda: loss_contours_figure(data, classifier, LOSS, 0, 1, resolution=RESOLUTION),
        lambda: gradient_stream_figure(data, classifier, LOSS, 0, 1, resolution=RESOLUTION),
        lambda: gradient_stream_figure(
            data, classifier, LOSS, 1, 2, generative, 0.05, resolution=RESOLUTION
        ),
    ]
    if with_latent:
        builders += [
            lambda: latent_map_figure(data, classifier, generative, RESOLUTION),
            lambda: latent_maps_figure(
                data, classifier, {"plain": generative, "regularized": generative}, RESOLUTION
            ),
            lambda: loss_contours_figure(
                data, classifier, LOSS, 2, 0, "latent", generative, RESOLUTION
            ),
        ]
    return builders


@pytest.mark.parametrize("name", ["cake2", "cake4", "wine"])
def test_map_figures_render_at_the_expected_size(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    for build in map_figures(case, with_latent=case.data.input_dim == 2):
        assert_png(build())


@pytest.mark.parametrize("name", ["cake4", "wine"])
def test_latent_pictures_need_a_2d_latent_space(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    with pytest.raises(ValueError, match="2-D latent space"):
        latent_map_figure(case.data, case.classifier, case.generative, RESOLUTION)
    with pytest.raises(ValueError, match="2-D latent space"):
        loss_contours_figure(
            case.data, case.classifier, LOSS, 0, 1, "latent", case.generative, RESOLUTION
        )
    with pytest.raises(ValueError, match="generative model"):
        loss_contours_figure(case.data, case.classifier, LOSS, 0, 1, "latent")


@pytest.mark.parametrize("name", ["cake2", "cake4", "wine"])
def test_path_figures_render_for_any_width(cases: dict[str, Case], name: str) -> None:
    case = cases[name]
    assert set(case.curves) == {"l1", "lof"}
    assert_png(path_metric_curves_figure(case.curves))
    assert_png(path_metric_curves_figure({}))
    assert_png(validity_per_target_figure(case.paths, case.data.class_names))


def label_paths(sources: list[int], targets: list[int], predictions: Tensor) -> CounterfactualPaths:
    """2-D paths at the origin, 3 classes: only their labels ([S, B] predictions) count."""
    n_steps, n_paths = predictions.shape
    return CounterfactualPaths(
        inputs=torch.zeros(n_paths, 2),
        sources=torch.tensor(sources),
        targets=torch.tensor(targets),
        points=torch.zeros(n_steps, n_paths, 2),
        latents=None,
        logits=torch.zeros(n_steps, n_paths, 3),
        predictions=predictions,
        seconds=0.0,
        method="wachter",
    )


def test_validity_per_target_bars_are_shares_of_valid_paths() -> None:
    # Targets [0, 0, 1, 2]; path 0 reaches 0, path 1 never does, path 2 reaches 1: 50 %, 100 %, 0 %.
    predictions = torch.tensor([[1, 1, 0, 0], [0, 2, 1, 1]])
    paths = label_paths([1, 1, 0, 0], [0, 0, 1, 2], predictions)
    figure = validity_per_target_figure(paths, ["a", "b", "c"])
    heights = [patch.get_height() for patch in figure.axes[0].patches]
    assert heights == pytest.approx([0.5, 1.0, 0.0])


def test_config_figures_pick_the_set_that_applies(cases: dict[str, Case]) -> None:
    plots = PlotsConfig(n_example_paths=5, grid_resolution=RESOLUTION)
    expected = {
        "cake2": WIDTH_INDEPENDENT | TWO_D_FIGURES | {"latent_map", "loss_contours_latent"},
        "cake4": WIDTH_INDEPENDENT | TWO_D_FIGURES,  # latent width 4: no latent pictures
        "wine": WIDTH_INDEPENDENT,
    }
    for name, case in cases.items():
        record = Record({"validity_rate": 0.5}, case.curves)
        figures = config_figures(
            case.data,
            case.classifier_model,
            case.generative_model,
            case.paths,
            record,
            plots,
            LOSS,
            EXPLAINER,
        )
        assert set(figures) == expected[name], name
        # Each figure's rendering is tested with its own function above.
        assert all(isinstance(figure, Figure) for figure in figures.values())
        assert max(f.get_size_inches()[0] for f in figures.values()) * DPI <= MAX_WIDTH_PX
    case = cases["wine"]
    without_generative = config_figures(
        case.data, case.classifier_model, None, case.paths, case.curves, plots, LOSS, EXPLAINER
    )
    assert set(without_generative) == WIDTH_INDEPENDENT - {"generative_learning_curves"}


def study_table() -> pd.DataFrame:
    rows = []
    for dataset in ("cake_on_sea", "wine"):
        for weight in (0.01, 0.1, 1.0):
            for seed in (83810, 14592, 3278):
                for method in ("latent_shift", "revise"):
                    value = 0.5 + 0.1 * np.log10(weight) + 0.01 * (seed % 7)
                    rows.append(
                        {
                            "dataset": dataset,
                            "loss.weight": weight,
                            "seed": seed,
                            "explainer": method,
                            "validity_rate": value,
                            "l1_auc": 1.0 + seed % 5 + (method == "revise"),
                            "lof_auc": 1.0 + 0.1 * (seed % 3),
                            "time_per_step_ns": 100.0,
                        }
                    )
    return pd.DataFrame(rows)


def test_study_figures() -> None:
    df = study_table()
    assert_png(validity_vs_weight_figure(df))
    assert_png(validity_vs_weight_figure(df, style="explainer"))
    assert_png(validity_vs_weight_figure(df[df.seed == 83810]))  # one seed: no SEM, no crash
    assert_png(method_boxplots_figure(df))
    assert_png(method_boxplots_figure(df, metrics=("l1_auc", "lof_auc", "time_per_step_ns")))
    with pytest.raises(ValueError, match="no column"):
        validity_vs_weight_figure(df, x="loss.missing")
    # The error bars are mean +- SEM over the seeds of each (dataset, weight).
    figure = validity_vs_weight_figure(df[df.explainer == "revise"])
    line = figure.axes[0].get_lines()[0]
    group = df[(df.dataset == "cake_on_sea") & (df.explainer == "revise")]
    means = group.groupby("loss.weight")["validity_rate"].mean().to_numpy()
    assert line.get_ydata() == pytest.approx(means)


def test_no_latex_while_drawing(cases: dict[str, Case]) -> None:
    """Figures made while rcParams ask for LaTeX still use mathtext (no LaTeX install needed)."""
    case = cases["cake2"]
    builders = map_figures(case, with_latent=True)
    with mpl.rc_context({"text.usetex": True}):
        # The class map (legend, title), a gradient stream (mathtext titles), the latent map.
        figures = [builders[0](), builders[6](), builders[8]()]
        figures.append(validity_vs_weight_figure(study_table()))
        figures.append(path_metric_curves_figure(case.curves))
    for figure in figures:
        assert_png(figure)  # rendering with usetex on would need a LaTeX binary
        assert not any(text.get_usetex() for text in figure.findobj(Text))


def test_grid_helpers(cases: dict[str, Case]) -> None:
    cake2, cake4, wine = (cases[name].data for name in ("cake2", "cake4", "wine"))
    assert is_planar(cake2) and is_planar(cake4) and not is_planar(wine)
    (low0, high0), (low1, high1) = raw_bounds(cake2)
    assert low0 == pytest.approx(-5, abs=0.2) and high0 == pytest.approx(55, abs=0.2)
    assert low1 == pytest.approx(-5, abs=0.2) and high1 == pytest.approx(55, abs=0.2)
    # Cake on sea is lifted onto its plane; other data sets sit at the training mean.
    plane = np.array([[10.0, 20.0], [40.0, 43.0]])
    lifted = cake4.denormalise(full_width(cake4, plane))
    coefficients = cake4.extras[CORRELATION_KEY]
    np.testing.assert_allclose(lifted[:, 2:], plane @ coefficients, rtol=1e-4, atol=1e-2)
    filled = wine.denormalise(full_width(wine, plane))
    np.testing.assert_allclose(filled[:, :2], plane, rtol=1e-5)
    np.testing.assert_allclose(filled[:, 2:], np.repeat(wine.mean[None, 2:], 2, 0), rtol=1e-4)
    # Overshooting paths grow the map, but by at most half the data range per side.
    (grown0, _), (_, grown1) = covering_bounds(cake2, np.array([[-10.0, 30.0], [20.0, 1000.0]]))
    assert grown0 < -10 and grown1 == pytest.approx(high1 + 0.5 * (high1 - low1))


def test_example_path_inputs(cases: dict[str, Case]) -> None:
    for name in ("cake2", "cake4"):
        data = cases[name].data
        raw = data.denormalise(example_path_inputs(data, 20))
        assert raw.shape == (20, data.input_dim)
        np.testing.assert_allclose(raw[:, 1], 43.0, atol=1e-3)
        np.testing.assert_allclose(raw[:, 0], np.linspace(37.0, 43.0, 20), atol=1e-3)
    with pytest.raises(ValueError, match="cake on sea"):
        example_path_inputs(cases["wine"].data)


def test_cake_class_map_draws_the_example_paths(cases: dict[str, Case]) -> None:
    """§7.6: on cake on sea the class map shows paths from x1 = 43, x0 in [37, 43] to class 0."""
    plots = PlotsConfig(n_example_paths=7, grid_resolution=RESOLUTION)
    for name in ("cake2", "cake4"):
        case = cases[name]
        figures = config_figures(
            case.data,
            case.classifier_model,
            case.generative_model,
            case.paths,
            case.curves,
            plots,
            LOSS,
            EXPLAINER,
        )
        axes = figures["class_map"].axes[0]
        (lines,) = [c for c in axes.collections if isinstance(c, LineCollection)]
        segments = lines.get_segments()
        assert len(segments) == 7, name
        starts = np.array([segment[0] for segment in segments])
        np.testing.assert_allclose(starts[:, 1], 43.0, atol=1e-3)
        np.testing.assert_allclose(starts[:, 0], np.linspace(37.0, 43.0, 7), atol=1e-3)
        assert "7 latent_shift example paths to" in axes.get_title()


def test_path_selection_is_deterministic_and_spread() -> None:
    assert spread_indices(100, 5).tolist() == [0, 25, 50, 74, 99]
    assert spread_indices(3, 20).tolist() == [0, 1, 2]
    assert spread_indices(0, 20).tolist() == []
    paths = label_paths([1, 2, 2, 1], [0, 0, 0, 0], torch.zeros(1, 4, dtype=torch.long))
    assert common_pair(paths) == (1, 0)  # tie between (1, 0) and (2, 0): the smallest
