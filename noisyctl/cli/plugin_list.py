"""``noisyctl plugins``: every registered name, its kind and where it comes from."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from noisyctl import plugins as plugin_system
from noisyctl.cli.common import JSON_OPTION, emit, printable

app = typer.Typer()


@app.command()
def plugins(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """List registered datasets, models, noise types, detectors, ... with their plugin and distribution."""
    entries = [{"name": r.name, "kind": r.kind, "plugin": r.plugin, "distribution": r.distribution,
                "version": r.version, "description": r.description} for r in plugin_system.registry().all()]
    result = {"plugins": entries}

    def render(console):
        # The plugin's module is in --json; in 80 columns a sixth column left the description a
        # word wide, each plugin a dozen lines.
        table = Table(title="registered plugins")
        table.add_column("kind", no_wrap=True)
        table.add_column("name", no_wrap=True)
        table.add_column("from", no_wrap=True)
        table.add_column("description", min_width=30)
        for e in entries:
            table.add_row(e["kind"], Text(printable(e["name"]), style="bold"), f"{e['distribution']} {e['version']}",
                          e["description"])
        console.print(table)

    return emit(ctx, result, render, json_output)
