"""Figures (SCIENCE.md §8): matplotlib with the project style, no LaTeX, never plt.show()."""
