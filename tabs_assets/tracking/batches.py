"""Params, metrics and tags logged in few calls."""

from collections.abc import Sequence
from typing import Any


def log_all(
    client: Any,
    run_id: str,
    params: Sequence[Any] = (),
    metrics: Sequence[Any] = (),
    tags: Sequence[Any] = (),
) -> None:
    """Params, metrics and tags in as few ``log_batch`` calls as MLflow's limits allow
    (100 params, 100 tags, 1000 values per call): each call is a database transaction."""
    params, metrics, tags = list(params), list(metrics), list(tags)
    while params or metrics or tags:
        batch_params, params = params[:100], params[100:]
        batch_tags, tags = tags[:100], tags[100:]
        room = 1000 - len(batch_params) - len(batch_tags)
        batch_metrics, metrics = metrics[:room], metrics[room:]
        client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)
