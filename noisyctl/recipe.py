"""Recipes: YAML files that list pipeline steps and their options.

```yaml
description: digits, 20% pair-flip noise
steps:
  - synth: {dataset: digits, noise: pairflip, rate: 0.2, out: runs/q/labels.h5}
  - train: {labels: runs/q/labels.h5, epochs: 30, out: runs/q/run.h5}
  - detect: {run: runs/q/run.h5}
```

Recipes are data: read with a bounded ``yaml.SafeLoader`` (``load_yaml``), and no key executes anything.
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


# A YAML document from a file or the command line is data a person wrote: bounded so that a crafted
# one (a billion-laughs of anchors, a 10,000-deep list, a 1-GB file) is one line, not a hang.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_NODES = 1_000_000  # values the document holds with every alias expanded
MAX_YAML_DEPTH = 50


class _TooLarge(yaml.YAMLError):
    pass


class InvalidYaml(NoisyctlError):
    """Text that does not parse as YAML (an option value given on the command line is then a string)."""


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` (no tag runs code) that also refuses deep nesting while it composes."""

    depth = 0

    def compose_node(self, parent, index):
        self.depth += 1
        try:
            if self.depth > MAX_YAML_DEPTH:
                raise _TooLarge(f"is nested more than {MAX_YAML_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(node, seen: dict) -> int:
    """How many values ``node`` stands for with its aliases expanded (an alias is the node it names,
    so a billion-laughs counts its billion), stopping early past the bound."""
    key = id(node)
    if key not in seen:
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        total = 1
        for child in children:
            total += _expanded_size(child, seen)
            if total > MAX_YAML_NODES:
                break
        seen[key] = total
    return seen[key]


def load_yaml(text: str, what: str) -> Any:
    """Parse ``text`` (``what`` names it in errors) as YAML data, within the bounds above."""
    if len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise NoisyctlError(f"{what} is larger than {MAX_YAML_BYTES >> 20} MiB; noisyctl reads smaller YAML")
    loader = _BoundedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise _TooLarge(f"holds more than {MAX_YAML_NODES:,} values once its aliases (*name) are expanded")
        return loader.construct_document(node)
    except _TooLarge as exc:
        raise NoisyctlError(f"{what} {exc}; noisyctl reads plainer YAML") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidYaml(f"{what} is not valid YAML{where}") from None
    finally:
        loader.dispose()


def read_yaml_file(path: str | Path, what: str) -> Any:
    """A YAML file: a regular file (not a pipe that would block) of bounded size, parsed by ``load_yaml``."""
    path = Path(path)
    try:
        status = path.stat()
    except FileNotFoundError:
        raise NoisyctlError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise NoisyctlError(f"cannot read {what} {path}: {exc.strerror}") from None
    if not path.is_file():
        raise NoisyctlError(f"{what} {path} is not a regular file")
    if status.st_size > MAX_YAML_BYTES:
        raise NoisyctlError(f"{what} {path} is larger than {MAX_YAML_BYTES >> 20} MiB; noisyctl reads smaller YAML")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NoisyctlError(f"cannot read {what} {path}: {exc}") from None
    return load_yaml(text, f"{what} {path}")


def load_recipe(path: str | Path, commands: list[str] | tuple[str, ...]) -> Recipe:
    path = Path(path)
    data = read_yaml_file(path, "recipe")
    if not isinstance(data, dict):
        raise NoisyctlError(f"recipe {path} must be a mapping with a 'steps' list")
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            step = (f"; a step goes in the 'steps' list (steps: [{{{key}: {{options}}}}])" if key in commands
                    else nearest(str(key), TOP_LEVEL_KEYS))
            raise NoisyctlError(f"recipe {path}: unknown key '{key}'{step}")
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
