"""The orchestration layer: Dagster assets, the content-addressed store, MLflow tracking, CLI."""
