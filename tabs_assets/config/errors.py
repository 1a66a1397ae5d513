"""A config that cannot be used, with every problem by its dotted path."""

from collections.abc import Sequence


class ConfigError(ValueError):
    """A config that cannot be used; ``problems`` lists ``dotted.path: message`` lines."""

    def __init__(self, origin: str, problems: Sequence[str]) -> None:
        self.origin = origin
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid config ({origin}): {len(self.problems)} problem(s)\n{lines}")
