"""Tests of tabs_assets, laid out like the package: tabs_assets/X/Y.py is tested in
X/test_Y.py; end_to_end/ holds the tests that run the whole graph, the servers or the README."""
