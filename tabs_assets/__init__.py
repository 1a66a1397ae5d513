"""tabs_assets: counterfactual explanations on tabular data as a Dagster asset graph.

Folders, lowest layer first (each imports only from those before it; README, "Architecture"):
``config`` (schemas), ``science`` (PyTorch/Lightning, no Dagster), ``store`` (content-addressed
results), ``graph`` (nodes and store keys), ``registry`` (registered configs and studies),
``ui`` (links and words), ``tracking`` (MLflow), ``defs`` (the Dagster code location) and
``cli`` (``tabs-assets``).
"""
