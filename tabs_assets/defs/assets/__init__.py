"""The Dagster assets: one module per group of the per-config graph, and the study chain."""
