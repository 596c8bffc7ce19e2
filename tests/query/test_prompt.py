"""The interactive SQL prompt (issue 12 C.2): dot-commands, modes, banner, line editing,
history and Ctrl-C, through the CLI on a pipe and through prompt_toolkit in process."""

from __future__ import annotations

import contextlib
import json
import threading
import time

from typer.testing import CliRunner

from raystack.cli import app
from raystack.query import connect

runner = CliRunner()


def prompt(store, script: str) -> tuple[int, str]:
    result = runner.invoke(app, ["sql", str(store.uri)], input=script)
    return result.exit_code, result.output


def test_unknown_dot_command_is_one_line_error_and_quit_still_works(labelled_store):
    st, _ = labelled_store
    code, out = prompt(st, ".frobnicate\n.quit\nSELECT 'not run' AS x;\n")
    assert code == 0, out
    errors = [line for line in out.splitlines() if "Error:" in line]
    assert errors == ["raystack> Error: unknown command '.frobnicate': try .help"]
    assert "not run" not in out


def test_dot_commands_schema_mode_tables_help(labelled_store):
    st, _ = labelled_store
    q = "SELECT video_id, count(*) AS n FROM videos GROUP BY 1 ORDER BY 1;\n"
    code, out = prompt(st, ".help\n.tables\n.schema\n.schema events\n.schema nope\n"
                           ".mode\n.mode csv\n" + q + ".mode json\n" + q + ".mode line\n" + q
                       + ".mode xml\n.exit\n")
    assert code == 0, out
    assert ".schema [NAME]" in out and "Ctrl-C cancels" in out  # .help
    assert "events  (macro)" in out and "scores  (view)" in out  # .tables
    assert "scores(run_id VARCHAR, video_id VARCHAR, frame BIGINT" in out  # .schema
    assert "videos(run_id VARCHAR" in out
    assert "events(threshold := ..., min_frames := ..." in out and "start_frame BIGINT" in out
    assert "Error: .schema: no view or macro named 'nope'" in out
    assert "mode: table" in out
    assert '"video_id","n"\n"cam1-id",1' in out  # csv
    start = out.index("[\n {")
    assert json.loads(out[start:out.index("}\n]", start) + 3])[0] == {"video_id": "cam1-id", "n": 1}
    assert "video_id = cam1-id\n       n = 1\n\nvideo_id = cam2-id" in out  # line
    assert "Error: .mode: choose one of table, csv, json, line; got 'xml'" in out


def test_banner_names_version_store_runs_and_help(labelled_store):
    st, _ = labelled_store
    code, out = prompt(st, "")
    assert code == 0
    first = out.splitlines()[:3]
    assert first[0] == f"raystack 0.1.0 SQL prompt, read-only, on {st.uri}"
    assert first[1].startswith(
        "runs: normal, test; views: manifest, runs, scores, thresholds, videos")
    assert '".help"' in first[2]


def test_dot_command_mid_statement_does_not_swallow_quit(labelled_store):
    st, _ = labelled_store
    code, out = prompt(st, "SELECT 1\n.quit\nAS x;\n")
    assert code == 0 and "│ 1 │" not in out and "Error" not in out


@contextlib.contextmanager
def typed(con, history, keys: list):
    """A prompt_toolkit reader on a pipe; each prompt gets the next chunk of ``keys``, as a
    person types only once the prompt shows (typed ahead, the rest of a chunk is lost
    with the prompt that read it); a list is typed in parts, 0.5 s apart."""
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput

    from raystack.query.prompt import toolkit_reader

    with create_pipe_input() as inp:
        reader = toolkit_reader(con, history, input=inp, output=DummyOutput())
        chunks = iter(keys)

        def type_slowly(parts: list[str]) -> None:
            for part in parts:
                time.sleep(0.5)  # the prompt reacts (completes) before the next keys
                inp.send_text(part)

        def read(prompt: str) -> str:
            chunk = next(chunks, "\x04")  # then Ctrl-D: end of input
            if isinstance(chunk, list):
                threading.Thread(target=type_slowly, args=(chunk,), daemon=True).start()
            else:
                inp.send_text(chunk)
            return reader(prompt)

        yield read


def test_line_editing_history_and_ctrl_c_in_prompt_toolkit(labelled_store, tmp_path):
    from raystack.query.prompt import repl

    st, _ = labelled_store
    con = connect(st)
    history = tmp_path / "state" / "raystack" / "sql_history"
    printed: list[str] = []
    with typed(con, history, [
        "SELECT 6 * 7\rAS answer;\r",  # Enter inside a statement continues it
        "\x1b[A\r",  # Up recalls the whole statement
        "SELECT 'typo' AS x;" + "\x1b[D" * 7 + "\x7fY\r",  # Left, Backspace: 'typY'
        "SELECT 'half\x03",  # Ctrl-C clears the line and the prompt stays
        ".mode line\r",
        ["SELECT count(*) AS n FROM manif", "\t", ";\r"],  # Tab completes the view's name
        # (not "vid": top_boxes' parameter video is a second word there)
        "SELECT 1 AS one;\r",
    ]) as read:
        failures = repl(con, read, printed.append)
    assert failures == 0, printed
    assert [p for p in printed if "42" in p] == [printed[0], printed[1]], printed
    assert "│     42 │" in printed[0] and "│ typY   │" in printed[2]
    assert printed[3] == "^C" and printed[-2:] == ["n = 0", "one = 1"], printed
    assert "+SELECT 6 * 7\n+AS answer;" in history.read_text()  # prompt_toolkit's format


def test_history_persists_across_sessions(labelled_store, tmp_path):
    from raystack.query.prompt import repl

    st, _ = labelled_store
    con = connect(st)
    history = tmp_path / "hist"
    for keys in (["SELECT 40 + 2 AS answer;\r"], ["\x1b[A\r"]):
        printed: list[str] = []
        with typed(con, history, keys) as read:
            repl(con, read, printed.append)
        assert len(printed) == 1 and "│     42 │" in printed[0], printed
