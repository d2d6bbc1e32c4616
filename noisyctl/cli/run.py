"""``noisyctl run RECIPE``: run a recipe's steps in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

import typer

from noisyctl.cli.common import (COLLECT_KEY, JSON_OPTION, RECIPE_KEY, command_names, parse_step, recipe_info,
                                 stdout, to_jsonable)
from noisyctl.errors import NoisyctlError
from noisyctl.recipe import Step, load_recipe

app = typer.Typer()

# Options naming files a step reads, and the option naming the file it writes.
INPUT_OPTIONS = ("labels", "run", "runs")
OUTPUT_OPTION = "out"


class PlannedStep(NamedTuple):
    step: Step
    where: str
    command: Any
    parsed: Any  # the step's parsed context


def check_inputs(plan: list[PlannedStep]) -> None:
    """Before anything runs: every input file exists already or is written by an earlier step."""
    made: set[Path] = set()
    for planned in plan:
        params = planned.parsed.params
        for name in INPUT_OPTIONS:
            value = params.get(name)
            for path in (value if isinstance(value, (list, tuple)) else [value]):
                if path is not None and Path(path).resolve() not in made and not Path(path).exists():
                    raise NoisyctlError(f"{planned.where}: '{name}' file {path} does not exist and no earlier "
                                        f"step writes it")
        if params.get(OUTPUT_OPTION) is not None:
            made.add(Path(params[OUTPUT_OPTION]).resolve())


@app.command("run")
def run_recipe(
    ctx: typer.Context,
    recipe: Path = typer.Argument(..., help="Recipe file (YAML) whose steps to run.", show_default=False),
    check: bool = typer.Option(False, "--check", help="Validate every step (keys, types, input files) and "
                               "run nothing."),
    json_output: bool = JSON_OPTION,
):
    """Run a recipe's steps (synth, train, detect, report, ...) in order."""
    root = ctx.find_root()
    loaded = load_recipe(recipe, [n for n in command_names(ctx) if n != "run"])
    plan = []
    for step in loaded.steps:  # parse every step first: a typo in step 3 fails before step 1 trains
        command = root.command.get_command(root, step.command)
        where = step.where(loaded)
        plan.append(PlannedStep(step, where, command, parse_step(command, ctx, step.options, where)))
    check_inputs(plan)
    if check:
        summary = {"recipe": str(recipe), "valid": True, "steps": [p.step.command for p in plan]}
        if json_output:
            typer.echo(json.dumps(summary, indent=2))
        else:
            stdout().print(f"{recipe}: {len(plan)} valid steps ({', '.join(summary['steps'])})")
        return
    results = []
    ctx.meta[COLLECT_KEY] = json_output
    console = stdout()
    for planned in plan:
        if not json_output:
            console.rule(f"step {planned.step.number}/{len(plan)}: {planned.step.command}")
        ctx.meta[RECIPE_KEY] = recipe_info(loaded.path, planned.step)
        try:
            with planned.parsed:
                result = planned.command.invoke(planned.parsed)
        except NoisyctlError as exc:
            raise type(exc)(f"{planned.where}: {exc}") from None
        results.append({"step": planned.step.number, "command": planned.step.command, "result": result})
    if json_output:
        typer.echo(json.dumps(to_jsonable({"recipe": str(recipe), "steps": results}), indent=2))
