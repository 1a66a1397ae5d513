"""What the UIs and the terminal show: links between Dagster and MLflow, configs and metrics in
words, figure previews."""
