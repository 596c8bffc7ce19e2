"""The ``raystack`` command line (``raystack --help``): one module per group of commands.

``app`` holds the Typer application; ``data`` synth and probe; ``train`` train; ``scan``
scan and status; ``query`` sql, events, runs and calibrate; ``evaluate`` eval and report.
"""

from __future__ import annotations

from raystack.cli import data, evaluate, query, scan, train  # noqa: F401  (registers commands)
from raystack.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
