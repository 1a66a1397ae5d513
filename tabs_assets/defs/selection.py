"""Asset selections from the command line's selection strings."""

import warnings
from typing import Any


def parse_selection(text: str) -> Any:
    """``AssetSelection.from_string`` without Dagster's BetaWarning.

    Dagster's selection parser builds ``*`` and ``not ...`` from
    ``AssetSelection.all(include_sources=...)``, a beta parameter, and warns on each command
    although we never pass it. ``*`` is plain ``AssetSelection.all()``; for the rest only that
    one warning is ignored (the parser's own use, not ours).
    """
    from dagster import AssetSelection, BetaWarning

    if text.strip() == "*":
        return AssetSelection.all()
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Parameter `include_sources`", category=BetaWarning
        )
        return AssetSelection.from_string(text)
