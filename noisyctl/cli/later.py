"""Commands whose place in the pipeline is fixed but which are not built yet."""

from __future__ import annotations

import typer

from noisyctl.errors import NoisyctlError

app = typer.Typer()


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def prune():
    """(not built yet) Remove suspects and retrain on the kept samples."""
    raise NoisyctlError("prune is not available in this version of noisyctl yet")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def correct():
    """(not built yet) Propose corrected labels (prototypes, consensus, kNN)."""
    raise NoisyctlError("correct is not available in this version of noisyctl yet")
