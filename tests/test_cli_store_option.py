"""`--store` on the commands whose store is their first argument (raystack.cli.main)."""

from __future__ import annotations

import sys

import pytest

from raystack.cli import main, store_as_argument


@pytest.mark.parametrize(("argv", "want"), [
    (["rs", "status", "--store", "st", "night1"], ["rs", "status", "st", "night1"]),
    (["rs", "events", "--run-id", "n", "--store=st"], ["rs", "events", "st", "--run-id", "n"]),
    (["rs", "sql", "-s", "st", "SELECT 1"], ["rs", "sql", "st", "SELECT 1"]),
    (["rs", "runs", "st"], ["rs", "runs", "st"]),
    # scan's own --store is an option of scan, left alone
    (["rs", "scan", "a", "--store", "st"], ["rs", "scan", "a", "--store", "st"]),
    # after "--" everything is an argument, even a literal --store
    (["rs", "sql", "st", "--", "--store"], ["rs", "sql", "st", "--", "--store"]),
    (["rs", "report", "--store"], ["rs", "report", "--store"]),  # no value: click says so
    (["rs"], ["rs"]),
])
def test_store_option_becomes_the_first_argument(argv, want):
    assert store_as_argument(argv) == want


def test_main_takes_store_as_an_option(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "no-store-here"
    monkeypatch.setattr(sys, "argv", ["raystack", "runs", "--store", str(missing)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    # The store was read as the store (and found missing), not refused as an option.
    assert exit_info.value.code != 0
    assert "No such option" not in err
    assert "no raystack store at" in err and str(missing) in err
