"""Experiment and study configuration: pydantic v2 schemas, loading, canonical hashing.

Importing this package is cheap (no torch, lightning, mlflow or dagster).
"""
