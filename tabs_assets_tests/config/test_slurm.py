"""tabs_assets.config.slurm: Slurm settings, one clear line per mistake."""

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from tabs_assets.config.slurm import SlurmSettingsError, parse_layer
from tabs_assets.defs.slurm.settings_layers import deployment_layer


@pytest.mark.parametrize("bad", [{"cpus": 0}, {"partiton": "gpu"}, {"time_limit_min": "1:00"}])
def test_bad_slurm_settings_are_one_clear_line(bad: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SlurmSettingsError) as error:
        parse_layer(bad, "the run config (execution.config)")
    message = str(error.value)
    assert "\n" not in message and next(iter(bad)) in message
    assert message.startswith("Slurm settings in the run config (execution.config): ")
    path = tmp_path / "slurm.yaml"
    path.write_text(yaml.safe_dump(bad))
    os.environ["TABS_ASSETS_SLURM_CONFIG"] = str(path)
    try:
        with pytest.raises(SlurmSettingsError, match=str(path)):
            deployment_layer()
    finally:
        del os.environ["TABS_ASSETS_SLURM_CONFIG"]
