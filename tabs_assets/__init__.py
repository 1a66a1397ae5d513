"""tabs_assets: counterfactual explanations on tabular data as a Dagster asset graph.

Layers: ``tabs_assets.config`` (pydantic schemas, no heavy imports), ``tabs_assets.science``
(datasets, models, explainers, metrics, plots: torch/Lightning, no Dagster) and
``tabs_assets.orchestration`` (assets, store, tracking, CLI: thin Dagster layer on top).
"""
