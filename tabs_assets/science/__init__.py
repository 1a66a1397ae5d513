"""The science layer: datasets, models, explainers, losses, metrics, plots.

Plain Python + PyTorch/Lightning; never imports Dagster or MLflow, so it works in a notebook.
"""
