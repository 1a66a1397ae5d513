"""``tabs-assets``: register configs and studies, inspect them, materialize, manage the store.

The commands are grouped by noun: configs (configs.py), studies (studies.py), the store
(store.py); app.py holds the group and what they share.
"""

from tabs_assets.cli import configs, store, studies
from tabs_assets.cli.app import main

COMMAND_MODULES = (configs, studies, store)  # importing them attaches their commands to main

__all__ = ["COMMAND_MODULES", "main"]
