"""Dagster assets: thin wrappers that call the science layer through the cached path."""
