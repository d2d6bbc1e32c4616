"""The ``noisyctl`` command line: one typer app per subcommand file, joined here."""

from __future__ import annotations

import typer

from noisyctl import __version__, plugins
from noisyctl.cli import (correct, detect, interop, plugin_list, prune, report, run, schema, synth, train,
                          train_detector)
from noisyctl.cli.common import NoisyctlGroup
from noisyctl.errors import NoisyctlError

BUILTIN_COMMANDS = (synth, train, detect, prune, correct, report, train_detector, interop, run, plugin_list, schema)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"noisyctl {__version__}")
        raise typer.Exit()


def create_app() -> typer.Typer:
    app = typer.Typer(
        cls=NoisyctlGroup, no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False,
        help="Find, measure and fix mislabeled samples from their training dynamics.\n\n"
             "Pipeline: synth -> train -> detect -> prune / correct -> report (or all at once: run RECIPE).")

    @app.callback()
    def root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")):
        pass

    for module in BUILTIN_COMMANDS:
        app.add_typer(module.app)
    try:
        manager = plugins.loaded().manager
    except NoisyctlError:
        # e.g. two plugins registering one name: every command that looks a name up
        # reports it inside the error boundary, so the CLI itself still starts.
        return app
    # Plugins add their commands to an app of their own, merged after the built-ins (listed last).
    plugin_commands = typer.Typer()
    for impl in manager.hook.register_commands.get_hookimpls():
        try:
            plugins.call_hook(impl, app=plugin_commands)
        except Exception as exc:
            plugins.warn(f"plugin '{impl.plugin_name}' failed to add commands ({type(exc).__name__}: {exc})")
    app.add_typer(plugin_commands)
    return app


def main() -> None:
    create_app()(prog_name="noisyctl")
