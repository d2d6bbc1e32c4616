"""The CLI reference (docs/cli.md), generated from the commands themselves so it cannot drift.

    .venv/bin/python -m noisyctl.cli.reference > docs/cli.md
"""

from __future__ import annotations

import click
import typer

from noisyctl.cli.common import param_type_name

HEADER = """# CLI reference

Generated from the code by `python -m noisyctl.cli.reference > docs/cli.md`; a test fails when it
differs. Every command also takes `--help`. Exit codes: 0 success, 1 an error (one `error:` line),
2 a usage error, 3 a CI gate that failed (`detect --fail-above`, `--fail-count`), 130 interrupted (Ctrl-C),
143 terminated (SIGTERM).
"""


def _type_name(param) -> str:
    name = param_type_name(param)
    return "text" if name == "str" else name


def _option_row(param) -> str:
    if param.param_type_name == "argument":
        name = f"`{param.name.upper()}`"
    else:
        name = " / ".join(f"`{flag}`" for flag in [*param.opts, *param.secondary_opts])
    kind = "flag" if getattr(param, "is_flag", False) else _type_name(param)
    if getattr(param, "multiple", False) or getattr(param, "nargs", 1) == -1:
        kind += ", repeatable"
    default = param.default
    shown = "" if default in (None, (), []) or callable(default) or getattr(param, "show_default", True) is False \
        else f"`{default}`"
    text = " ".join((getattr(param, "help", None) or "").split()).replace("|", "\\|")
    return f"| {name} | {kind} | {shown} | {text} |"


def commands(app: typer.Typer) -> list[tuple[str, click.Command]]:
    """Each command's name and its click command, in the order the help lists them."""
    group = typer.main.get_command(app)
    context = click.Context(group, info_name="noisyctl")
    return [(name, group.get_command(context, name)) for name in group.list_commands(context)]


def cli_markdown(app: typer.Typer) -> str:
    lines = [HEADER]
    for name, command in commands(app):
        lines += [f"## `noisyctl {name}`", "", " ".join((command.help or "").split()), ""]
        params = [p for p in command.params if p.name != "help"]
        if params:
            lines += ["| option | type | default | meaning |", "| --- | --- | --- | --- |"]
            lines += [_option_row(p) for p in params]
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    from noisyctl.cli import create_app

    typer.echo(cli_markdown(create_app()), nl=False)


if __name__ == "__main__":
    main()
