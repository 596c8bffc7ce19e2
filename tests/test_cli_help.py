"""Command help reads as prose at any terminal width (raystack.cli.app.reflow)."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from raystack.cli import app
from raystack.cli.app import reflow


def test_reflow_joins_wrapped_lines_and_keeps_commands_and_labelled_items_apart():
    text = """First line.

    Exits 1 when a unit failed, 3 when the
    store is unavailable.
    park: walkers
    cross a path.

    Examples: raystack probe /tmp/a
    raystack probe s3://cams --out
    videos.parquet
    """
    assert reflow(text) == (
        "First line.\n\n"
        "Exits 1 when a unit failed, 3 when the store is unavailable.\n"
        "park: walkers cross a path.\n\n"
        "Examples: raystack probe /tmp/a\nraystack probe s3://cams --out videos.parquet"
    )


def test_every_command_help_breaks_lines_only_where_it_means_to():
    # Before: lines wrapped at the source's width broke again at an 80-column terminal,
    # leaving "or" or "their" alone on a line of the scan help. On a wide terminal each
    # paragraph must print as one line, but for commands and labelled items.
    runner = CliRunner()
    names = [c.name or c.callback.__name__.removesuffix("_cmd") for c in app.registered_commands]
    assert {"scan", "events", "train", "synth"} <= set(names)
    for name in names:
        res = runner.invoke(app, [name, "--help"], env={"COLUMNS": "2000"}, terminal_width=2000)
        assert res.exit_code == 0, (name, res.output)
        prose = res.output.split("╭")[0].splitlines()  # the text above the first panel
        for prev, line in zip(prose, prose[1:], strict=False):
            if prev.strip() and line.strip() and not prev.strip().startswith("Usage:"):
                assert re.match(r"raystack |[a-z][\w-]*: ", line.strip()), (name, prev, line)
