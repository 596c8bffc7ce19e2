"""How a ``raystack`` command ends on an error: one message line and the code of
:mod:`raystack.exitcodes`, the same for every command.

Commands raise; :class:`ExitCodeGroup` (the Typer app's group class) catches whatever a
command did not handle itself, so a storage outage, an unexpected exception or Ctrl-C ends
with its documented code instead of a traceback and click's generic 1.
"""

from __future__ import annotations

import traceback
from typing import Any

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

from raystack import exitcodes


def fail(err: BaseException) -> typer.Exit:
    """Print ``error: ...`` for ``err`` and return the Exit carrying its code (raise it)."""
    code = exitcodes.exit_code(err)
    if code == exitcodes.INTERNAL:
        traceback.print_exception(err)
        typer.secho(f"error: unexpected {type(err).__name__} (a bug in raystack; please "
                    f"report it with the traceback above): {err}", fg=typer.colors.RED,
                    err=True)
    elif code == exitcodes.INTERRUPTED:
        typer.secho(f"interrupted: {err}" if str(err) else "interrupted",
                    fg=typer.colors.YELLOW, err=True)
    else:
        typer.secho(f"error: {exitcodes.describe(err)}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=code)


class ExitCodeGroup(TyperGroup):
    """Typer's group, ending every uncaught exception with the documented exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, TyperException):
            raise  # an exit a command chose, or a usage error (click's own code 2)
        except (Exception, KeyboardInterrupt) as e:
            raise fail(e) from e
