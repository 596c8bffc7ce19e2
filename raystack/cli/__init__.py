"""The ``raystack`` command line (``raystack --help``): one module per group of commands.

``app`` holds the Typer application; ``data`` synth and probe; ``train`` train; ``scan``
scan and status; ``query`` sql, events, runs and calibrate; ``evaluate`` eval and report.
"""

from __future__ import annotations

import signal
import sys

from raystack.threads import short_omp_spin

# Before any command imports torch: libgomp reads its settings when torch loads it.
short_omp_spin()

# Importing a module registers its commands; `raystack --help` lists them in this order,
# the order of the work (synth, probe, train, scan, status, sql, ..., eval, report).
# isort: off
from raystack.cli import data  # noqa: E402, F401
from raystack.cli import train  # noqa: E402, F401
from raystack.cli import scan  # noqa: E402, F401
from raystack.cli import query  # noqa: E402, F401
from raystack.cli import evaluate  # noqa: E402, F401
# isort: on
from raystack.cli.app import app, reflow_commands  # noqa: E402

reflow_commands(app)

# Commands that hold a Ray driver, whose sockets must see EPIPE as an error, not a signal.
_RAY_COMMANDS = frozenset({"scan", "train"})


# Commands whose store is their first argument. `raystack scan` names its store with
# --store (its first argument is the archive); these take that spelling too, so that the
# scan's command line can be edited into the next command.
_STORE_FIRST = frozenset({"status", "sql", "events", "runs", "calibrate", "eval", "report"})


def store_as_argument(argv: list[str]) -> list[str]:
    """``argv`` with ``--store S`` / ``--store=S`` / ``-s S`` of a store-first command moved
    to its first argument (``raystack status --store st night1`` -> ``status st night1``)."""
    if len(argv) < 2 or argv[1] not in _STORE_FIRST:
        return argv
    head, rest, stores = argv[:2], [], []
    i = 2
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            rest += argv[i:]
            break
        if tok in ("--store", "-s") and i + 1 < len(argv):
            stores.append(argv[i + 1])
            i += 2
            continue
        if tok.startswith("--store="):
            stores.append(tok.split("=", 1)[1])
        else:
            rest.append(tok)
        i += 1
    return head + stores + rest


def main() -> None:
    # The other commands die of SIGPIPE as cat and grep do when the reader goes (`raystack
    # status | head`, exit 141): Python's default turns it into BrokenPipeError and click
    # into a silent exit 1, which this CLI uses for "units failed or pending".
    if hasattr(signal, "SIGPIPE") and not _RAY_COMMANDS & set(sys.argv[1:2]):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.argv = store_as_argument(sys.argv)
    app()


__all__ = ["app", "main"]
