"""What every subcommand shares: the error boundary, output, and recipe options."""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from noisyctl.errors import NoisyctlError, nearest
from noisyctl.fileio import DiskFull, check_output
from noisyctl.recipe import Step, load_recipe

DEBUG_ENV = "NOISYCTL_DEBUG"
COLLECT_KEY = "noisyctl.collect"  # ctx.meta: true inside `run --json`, whose steps print nothing
RECIPE_KEY = "noisyctl.recipe"  # ctx.meta: the recipe step being run, recorded in output files
NOT_RECIPE_KEYS = ("recipe", "json_output")

RECIPE_OPTION = typer.Option(None, "--recipe", help="Take options not given here from this recipe's step "
                             "for this command.", show_default=False, dir_okay=False)
JSON_OPTION = typer.Option(False, "--json", help="Print one JSON document for scripts and CI instead of tables.")


# Control characters (an ESC that starts a terminal sequence, an OSC-8 link) and bidirectional
# overrides, as they may stand in ids, class names and paths from files; shown escaped, never obeyed.
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with control characters written as ``\\xNN`` escapes."""
    return _UNPRINTABLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                            else f"\\u{ord(m.group()):04x}", text)


class PlainConsole(Console):
    """The console every command prints through. Strings are plain text: ids, class names and paths
    from files may hold ``[/]``, ``[link=...]`` or ``:smile:``, so markup and emoji codes are off
    (noisyctl's own styling is ``rich.text.Text`` with a style), and control characters are escaped."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(markup=False, emoji=False, **kwargs)

    def render_str(self, text: str, **kwargs: Any):
        return super().render_str(printable(text), **kwargs)


def stderr() -> Console:
    return PlainConsole(stderr=True)


def stdout() -> Console:
    return PlainConsole()


def styled(label: str, style: str, text: str = "") -> Text:
    """``label`` in ``style``, then plain ``text``: a note, an error, a highlighted cell."""
    return Text.assemble((label, style), printable(f" {text}" if text else ""))


def note(console: Console, text: str) -> None:
    console.print(styled("note:", "yellow", text))


def fail(message: str, code: int = 1) -> None:
    stderr().print(styled("error:", "bold red", " ".join(str(message).split())), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _is_cli_exception(exc: BaseException) -> bool:
    """Click's own exceptions (usage errors, --help, Exit) carry their exit codes; let them through."""
    module = type(exc).__module__
    return module.startswith(("click", "typer"))


def _raised_in_hdf5(exc: BaseException) -> bool:
    """Whether libhdf5 (through h5py) raised: damaged bytes the store's own checks did not reach."""
    frame = exc.__traceback__
    while frame is not None:
        if f"{os.sep}h5py{os.sep}" in frame.tb_frame.f_code.co_filename:
            return True
        frame = frame.tb_next
    return False


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI runners, schedulers and `kill` send), raised where the program is, so it
    stops as Ctrl-C stops it: files written atomically stay whole, and train keeps a checkpoint."""


def _terminate(signum, frame):
    raise Terminated()


# click's names for the types typer >= 0.29 names by their annotation; a Path that must be a file or
# a folder is a path here
CLICK_TYPE_NAMES = {"text": "str", "integer": "int", "boolean": "bool", "file": "path", "directory": "path"}


def param_type_name(param) -> str:
    """A parameter's type as the help and the reference name it (``str``, ``path``, ``int``), a
    list's item type for a list. Typer 0.29 and later name it from the annotation (``bare_type``);
    older ones (0.27 on a GPU machine's image) only through click's type, which names it otherwise."""
    bare = getattr(param, "bare_type", None)
    name = str(bare() if callable(bare) else param.type.name).lower()
    name = re.sub(r"list\[(\w+)\]", r"\1", name)
    return CLICK_TYPE_NAMES.get(name, name)


def _plain_types(command, ctx) -> None:
    """Help that reads like a command line: a flag shows no ``<bool>``, a repeatable option its
    element (``KEY=VALUE``, ``<path>``) instead of ``<list[str]>``, and an argument its name in capitals."""
    if command is None:
        return
    for param in command.get_params(ctx):
        if getattr(param, "is_flag", False):
            param.metavar = ""
        elif getattr(param, "multiple", False) and param.metavar is None:
            element = param_type_name(param)
            param.metavar = "KEY=VALUE" if param.name.endswith("_option") else f"<{element}>"
        elif param.param_type_name == "argument" and param.metavar is None:
            param.metavar = param.name.upper()


def _one_line_summary(command) -> None:
    """The command table shows a docstring's first paragraph; typer's rich markup keeps its line breaks,
    which split a row mid-sentence wherever the source wrapped it. Joined, rich wraps it to the table."""
    if command is not None and command.short_help is None and command.help:
        command.short_help = " ".join(inspect.cleandoc(command.help).split("\n\n")[0].split())


class NoisyctlGroup(TyperGroup):
    """The one error boundary: a NoisyctlError becomes one red line and exit 1, never a traceback;
    Ctrl-C is exit 130 and SIGTERM exit 143, each one line."""

    def get_command(self, ctx, name):
        command = super().get_command(ctx, name)
        _plain_types(command, ctx)
        _one_line_summary(command)  # the help's command table reads each command through here
        return command

    def format_help(self, ctx, formatter):
        _plain_types(self, ctx)
        return super().format_help(ctx, formatter)

    @staticmethod
    def _resume_hint(ctx) -> str:
        """How to go on after an interrupted command that kept its work (train keeps every finished epoch)."""
        if ctx.invoked_subcommand == "train":
            return "; the epochs finished so far are kept: the same command with --resume continues"
        return ""

    def invoke(self, ctx):
        import signal
        import threading

        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except DiskFull as exc:
            # libhdf5 keeps what it could not flush and can crash while Python shuts down (exit 139):
            # everything is cleaned up by now (temporary files, locks), so leave without the teardown.
            with contextlib.suppress(typer.Exit):
                fail(str(exc))
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)
        except NoisyctlError as exc:
            fail(str(exc), getattr(exc, "exit_code", 1))
        except Terminated:
            fail(f"terminated (SIGTERM){self._resume_hint(ctx)}", 143)
        except BrokenPipeError:
            # `noisyctl ... | head`: the reader left; say nothing more (Python's documented way)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None
        except KeyboardInterrupt:
            fail(f"interrupted{self._resume_hint(ctx)}", 130)
        except Exception as exc:
            if _is_cli_exception(exc) or os.environ.get(DEBUG_ENV):
                _hint_at_the_option(exc, ctx.invoked_subcommand)
                raise
            if _raised_in_hdf5(exc):
                fail(f"an HDF5 file is damaged and cannot be read ({type(exc).__name__}: {exc})")
            fail(f"internal error: {type(exc).__name__}: {exc} (set {DEBUG_ENV}=1 for a traceback)")
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)


# Files a command takes as an option only, where a user may give them as its argument (as `detect
# RUN` takes one): `noisyctl train labels.h5` said only "unexpected extra argument".
OPTION_FILES = {"train": "--labels", "synth": "--out"}


def _hint_at_the_option(exc: Exception, command: str | None) -> None:
    """Add to click's "unexpected extra argument" the option that takes the file, where the command
    takes it as an option only (OPTION_FILES)."""
    extra = re.fullmatch(r"Got unexpected extra argument(?:s|\(s\))? \((.*)\)", str(getattr(exc, "message", "")))
    if extra and command in OPTION_FILES and extra.group(1).lower().endswith(".h5"):
        exc.message += f": `noisyctl {command}` takes the file as {OPTION_FILES[command]} {extra.group(1)}"


def duration_words(seconds: float) -> str:
    """A duration as a person reads it: 42 s, 7 min, 2.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def emit(ctx: typer.Context, result: dict[str, Any], render: Callable[[Console], None], json_output: bool) -> dict:
    """Print a command's result as JSON or through ``render``; inside ``run --json`` print nothing."""
    if ctx.meta.get(COLLECT_KEY):
        return result
    if json_output:
        typer.echo(json.dumps(to_jsonable(result), indent=2))
    else:
        render(stdout())
    return result


# --- recipes ----------------------------------------------------------------

def command_names(ctx: typer.Context) -> list[str]:
    root = ctx.find_root()
    return list(root.command.list_commands(root))


def _as_arg(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def step_argv(command, options: dict[str, Any], where: str) -> list[str]:
    """A recipe step as the command line that means the same, so the CLI's parser validates it."""
    params = {p.name: p for p in command.params if p.name not in NOT_RECIPE_KEYS and p.expose_value}
    argv: list[str] = []
    positional: list[str] = []
    for key, value in options.items():
        param = params.get(key)
        if param is None:
            raise NoisyctlError(f"{where}: unknown key '{key}'{nearest(key, list(params))}")
        if param.param_type_name == "argument":
            positional.extend(_as_arg(v) for v in (value if isinstance(value, list) else [value]))
            continue
        option = next((o for o in param.opts if o.startswith("--")), param.opts[0])
        if getattr(param, "is_flag", False):
            if not isinstance(value, bool):
                raise NoisyctlError(f"{where}: '{key}' must be true or false, not {value!r}")
            if value:
                argv.append(option)
            elif param.secondary_opts:
                argv.append(param.secondary_opts[0])
            continue
        if getattr(param, "multiple", False):
            if isinstance(value, dict):  # KEY=VALUE options written as a mapping
                values = [f"{k}={json.dumps(v)}" for k, v in value.items()]
            elif isinstance(value, list):
                values = [_as_arg(v) for v in value]
            else:
                values = [_as_arg(value)]
        else:
            values = [_as_arg(value)]
        argv.extend(f"{option}={v}" for v in values)
    return argv + (["--"] + positional if positional else [])


def parse_step(command, parent: typer.Context, options: dict[str, Any], where: str):
    """Parse a recipe step with the command's own parser; returns its context (params and their sources)."""
    argv = step_argv(command, options, where)
    try:
        return command.make_context(command.name, argv, parent=parent)
    except Exception as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        raise NoisyctlError(f"{where}: {message}") from None


def recipe_info(recipe_path: Path, step: Step) -> dict[str, Any]:
    return {"path": str(recipe_path), "step": step.number, "command": step.command, "options": step.options}


# What each command's path options are: the files it reads, and those it writes (``png`` is a
# folder it writes into). Every output is checked against every input before any work is done.
INPUT_OPTIONS = ("run", "runs", "labels", "compare", "data_root", "fine_tune", "otx_export", "review", "source",
                 "true_labels", "trusted", "weights", "recipe")
OUTPUT_OPTIONS = ("out", "export", "cleanlab", "suspects", "html", "scores_out", "retrain")


def _paths(value: Any) -> list[Path]:
    """The paths an option holds (a flag of the same name in another command holds none)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    return [Path(v) for v in values if isinstance(v, (str, os.PathLike))]


def check_paths(params: dict[str, Any]) -> None:
    """Refuse, in one line and before any work, outputs that are folders, devices or pipes, outputs
    that are one of the command's inputs (``prune run.h5 -o run.h5`` would replace the run with a
    labels file), and two outputs that are one file."""
    inputs = tuple(p for name in INPUT_OPTIONS for p in _paths(params.get(name)))
    written: dict[Path, str] = {}
    for name in OUTPUT_OPTIONS:
        for path in _paths(params.get(name)):
            option = "--" + name.replace("_", "-")
            target = check_output(path, inputs, what=option)
            if target in written:
                raise NoisyctlError(f"{option} and {written[target]} name the same file {path}; give two files")
            written[target] = option
    for folder in _paths(params.get("png")):
        if folder.exists() and not folder.is_dir():
            raise NoisyctlError(f"--png {folder} is a file; give a folder for the figures")


def with_recipe(ctx: typer.Context) -> dict[str, Any]:
    """The command's options, with those not given on the command line taken from ``--recipe``;
    its paths are checked (``check_paths``) before the command does any work."""
    params = _with_recipe(ctx)
    check_paths(params)
    return params


def _with_recipe(ctx: typer.Context) -> dict[str, Any]:
    params = dict(ctx.params)
    path: Optional[Path] = params.get("recipe")
    if path is None:
        return params
    recipe = load_recipe(path, command_names(ctx))
    step = recipe.step_for(ctx.command.name)
    parsed = parse_step(ctx.command, ctx.parent, step.options, step.where(recipe))
    for name, value in parsed.params.items():
        given_here = ctx.get_parameter_source(name).name == "COMMANDLINE"
        if not given_here and parsed.get_parameter_source(name).name == "COMMANDLINE":
            params[name] = value
    ctx.meta[RECIPE_KEY] = recipe_info(recipe.path, step)
    return params


def require(value: Any, what: str) -> Any:
    if value is None:
        raise NoisyctlError(f"missing {what}: give it on the command line or in the recipe")
    return value


def require_not_negative(value: int | None, option: str) -> None:
    if value is not None and value < 0:
        raise NoisyctlError(f"{option} {value} cannot be negative")
