"""The ``raystack`` command line: each command maps 1:1 onto a library function.

The CLI parses arguments, calls the library, prints; it holds no logic of its own.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="raystack",
    help="Scan video archives for anomalies with state-space (Mamba) models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


# --- data plane: synth, probe ---------------------------------------------------------


# --- models and training: train -------------------------------------------------------


# --- scan: scan, status ---------------------------------------------------------------


# --- query and evaluation: sql, events, calibrate, eval, report ------------------------


def main() -> None:
    app()


if __name__ == "__main__":
    main()
