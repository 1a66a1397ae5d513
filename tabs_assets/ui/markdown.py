"""Markdown tables for Dagster metadata (the UI renders them).

Written by ``tabulate``, the library behind pandas' ``DataFrame.to_markdown`` that the study
reports use: one table writer, in the same pipe format, for asset metadata and report files.
"""

from collections.abc import Sequence
from typing import Any

from tabulate import tabulate


def _cell(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A pipe table; floats to 4 significant digits, every other cell as written."""
    cells = [[_cell(value) for value in row] for row in rows]
    return tabulate(cells, headers=list(header), tablefmt="pipe", disable_numparse=True)
