"""The tabs-assets command line, commands grouped by noun."""
