"""The Typer application every command registers on, and what the commands share.

Each command maps 1:1 onto a library function: the CLI parses arguments, resolves paths,
calls the library and prints; it holds no logic of its own.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import typer
import typer.core

from raystack.cli_errors import ExitCodeGroup
from raystack.cli_errors import fail as _fail_by_table
from raystack.config import absolute_path
from raystack.exitcodes import epilog

_display_type = typer.core.TyperOption.display_type_rich


def _display_type_without_flags(self: Any, ctx: Any) -> str | None:
    # Typer labels switches "<bool>", which reads as if they took a value (--dry-run true).
    return None if self.is_flag else _display_type(self, ctx)


typer.core.TyperOption.display_type_rich = _display_type_without_flags


def _version(value: bool) -> None:
    if value:
        from raystack import __version__

        typer.echo(f"raystack {__version__}")
        raise typer.Exit


app = typer.Typer(
    name="raystack",
    help="Scan video archives for anomalies with state-space (Mamba) models.",
    epilog=epilog(),
    cls=ExitCodeGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", "-V", callback=_version, is_eager=True,
        help="Print raystack's version and exit."),
) -> None:
    """Scan video archives for anomalies with state-space (Mamba) models."""


def fail(err: BaseException, code: int | None = None) -> typer.Exit:
    """Print ``err`` as one red line on stderr; the Exit to raise, with ``code`` or else the
    code of the exit-code table (raystack.exitcodes, the same for every command)."""
    if code is None:
        return _fail_by_table(err)
    typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


def query_errors() -> tuple[type[Exception], ...]:
    from raystack.errors import RaystackError

    return (RaystackError, ValueError, OSError)


def abs_path(value: Any) -> Any:
    """Typer callback of every path option: local paths absolute, URIs as they are."""
    return absolute_path(value)


def default_of(cls: type, name: str) -> str:
    """The dataclass default of ``cls.name`` as --help shows it (options default to None so
    that a --config file can set them)."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    value = field.default
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return ", ".join(map(str, value)) or "none"
    return str(value)


def emit(table: Any, fmt: str, out: str | None) -> None:
    """Print ``table`` (or write it to ``out``) in ``fmt``."""
    from raystack.tableio import write_result

    text = write_result(table, fmt, out)
    typer.echo(f"wrote {table.num_rows} rows to {text}" if out else text,
               nl=not text.endswith("\n"))


# A line of help that starts one of these stays on a line of its own: a command to copy
# (``raystack ...``) or a labelled item (``park: ...``).
_OWN_LINE = re.compile(r"raystack |[a-z][\w-]*: ")


def reflow(text: str) -> str:
    """``text`` with each paragraph's wrapped lines joined into one.

    Typer (>= 0.16) prints a docstring's single line breaks as they are, so lines wrapped
    at the source's width break again at the terminal's, leaving a word or two alone on a
    line. Joined, the terminal wraps them once.
    """
    paragraphs = []
    for para in inspect.cleandoc(text).split("\n\n"):
        lines = [ln.strip() for ln in para.splitlines() if ln.strip()]
        out: list[str] = []
        for ln in lines:
            if out and not _OWN_LINE.match(ln):
                out[-1] += " " + ln
            else:
                out.append(ln)
        paragraphs.append("\n".join(out))
    return "\n\n".join(paragraphs)


def reflow_commands(typer_app: typer.Typer) -> None:
    """Reflow the help of every command registered on ``typer_app`` (see :func:`reflow`)."""
    for command in typer_app.registered_commands:
        doc = command.help or inspect.getdoc(command.callback) or ""
        command.help = reflow(doc)


FORMAT_HELP = "table (default), csv, json or parquet (parquet needs --out)."
STORE_HELP = "A store: folder or s3:// URI (or --store STORE, as scan names it)."
