"""``noisyctl schema``: the HDF5 file format, from the code that defines it."""

from __future__ import annotations

from dataclasses import asdict

import typer

from noisyctl import store
from noisyctl.cli.common import JSON_OPTION, emit

app = typer.Typer()


@app.command()
def schema(ctx: typer.Context, json_output: bool = JSON_OPTION):
    """Print the HDF5 schema of labels and run files (Markdown, as in docs/schema.md)."""
    result = {"schema": store.SCHEMA_NAME, "version": store.SCHEMA_VERSION,
              "attributes": [asdict(a) for a in store.ATTRIBUTES], "fields": [asdict(f) for f in store.FIELDS]}
    return emit(ctx, result, lambda console: typer.echo(store.schema_markdown(), nl=False), json_output)
