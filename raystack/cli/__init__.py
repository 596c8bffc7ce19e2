"""The ``raystack`` command line (``raystack --help``): one module per group of commands.

``app`` holds the Typer application; ``data`` synth and probe; ``train`` train; ``scan``
scan and status; ``query`` sql, events, runs and calibrate; ``evaluate`` eval and report.
"""

from __future__ import annotations

# Importing a module registers its commands; `raystack --help` lists them in this order,
# the order of the work (synth, probe, train, scan, status, sql, ..., eval, report).
# isort: off
from raystack.cli import data  # noqa: F401
from raystack.cli import train  # noqa: F401
from raystack.cli import scan  # noqa: F401
from raystack.cli import query  # noqa: F401
from raystack.cli import evaluate  # noqa: F401
# isort: on
from raystack.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
