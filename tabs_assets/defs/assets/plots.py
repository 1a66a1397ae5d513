"""The plots asset: every figure that applies to the config, as PNG/SVG (thumbnails of the PNGs
are stored with the entry by the cached path, for the Dagster UI)."""

from tabs_assets.config.experiment import ExperimentConfig
from tabs_assets.defs.assets.explanations import load_record
from tabs_assets.defs.cached import config_asset
from tabs_assets.defs.compute import Computed, Inputs, RunLog


@config_asset("plots", group="plots", loader=load_record, kinds={"matplotlib"})
def plots(config: ExperimentConfig, inputs: Inputs, log: RunLog) -> Computed:
    from tabs_assets.science.plotting.config_figures import config_figures
    from tabs_assets.science.plotting.style import figure_bytes
    from tabs_assets.science.records import Record

    figures = config_figures(
        inputs["dataset"],
        inputs["classifier"],
        inputs["generative_model"],
        inputs["counterfactual_paths"],
        inputs["explanation_metrics"],
        config.plots,
        config.loss,
        config.explainer,
    )
    log.info(f"plots: {len(figures)} figures: {', '.join(figures)}")
    files = {
        f"{name}.{fmt}": figure_bytes(figure, fmt)
        for name, figure in figures.items()
        for fmt in config.plots.formats
    }
    return Computed(
        payload=Record({"figures": sorted(figures), "formats": list(config.plots.formats)}),
        metrics={"figures": len(figures)},
        files=files,
        previews=sorted(name for name in files if name.endswith(".png")),
    )
