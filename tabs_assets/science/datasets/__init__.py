"""Data sets (SCIENCE.md §1): every kind becomes a TabularData, then a PreparedDataset."""
