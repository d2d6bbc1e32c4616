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
        table = Table(title="registered plugins")
        for column in ("kind", "name", "plugin", "distribution", "version"):
            table.add_column(column, no_wrap=True)
        table.add_column("description")
        for e in entries:
            table.add_row(e["kind"], Text(printable(e["name"]), style="bold"), e["plugin"], e["distribution"], e["version"],
                          e["description"])
        console.print(table)

    return emit(ctx, result, render, json_output)
