"""Recipes: YAML files that list pipeline steps and their options.

```yaml
description: digits, 20% pair-flip noise
steps:
  - synth: {dataset: digits, noise: pairflip, rate: 0.2, out: runs/q/labels.h5}
  - train: {labels: runs/q/labels.h5, epochs: 30, out: runs/q/run.h5}
  - detect: {run: runs/q/run.h5}
```

Recipes are data: read with ``yaml.safe_load``, and no key executes anything.
A step's keys are the command's option names (``batch_size`` or ``batch-size``);
which keys exist is the CLI's business (see ``noisyctl.cli.common``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from noisyctl.errors import NoisyctlError, nearest

TOP_LEVEL_KEYS = ("description", "steps")


@dataclass
class Step:
    command: str
    options: dict[str, Any]
    number: int  # 1-based position in the recipe

    def where(self, recipe: "Recipe") -> str:
        return f"{recipe.path}: step {self.number} ({self.command})"


@dataclass
class Recipe:
    path: Path
    description: str
    steps: list[Step]

    def step_for(self, command: str) -> Step:
        for step in self.steps:
            if step.command == command:
                return step
        raise NoisyctlError(f"{self.path} has no '{command}' step")


def load_recipe(path: str | Path, commands: list[str] | tuple[str, ...]) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NoisyctlError(f"recipe {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise NoisyctlError(f"cannot read recipe {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise NoisyctlError(f"recipe {path} is not valid YAML{where}") from None
    if not isinstance(data, dict):
        raise NoisyctlError(f"recipe {path} must be a mapping with a 'steps' list")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise NoisyctlError(f"recipe {path}: unknown key '{key}'{nearest(str(key), TOP_LEVEL_KEYS)}")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise NoisyctlError(f"recipe {path} needs a non-empty 'steps' list")
    steps = []
    for number, raw in enumerate(raw_steps, start=1):
        if not isinstance(raw, dict) or len(raw) != 1:
            raise NoisyctlError(f"recipe {path}: step {number} must be one 'command: {{options}}' mapping")
        ((command, options),) = raw.items()
        if command not in commands:
            raise NoisyctlError(f"recipe {path}: step {number} has unknown command '{command}'"
                                f"{nearest(str(command), commands)}; commands: {', '.join(commands)}")
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise NoisyctlError(f"recipe {path}: step {number} ({command}) options must be a mapping")
        steps.append(Step(command, {str(k).replace("-", "_"): v for k, v in options.items()}, number))
    description = data.get("description") or ""
    return Recipe(path, str(description), steps)
