"""tabs_assets.config.reference: the config reference in the README."""

from tabs_assets.config.reference import config_reference
from tabs_assets_tests.conftest import REPO


def test_readme_config_reference_is_current() -> None:
    assert config_reference() in (REPO / "README.md").read_text()
