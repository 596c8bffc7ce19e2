"""Fusion specs: how score streams combine into one anomaly score, as text and as macro args.

    parse_fusion("weighted:0.6")          # Fusion(kind='weighted', streams=('fp', 'fr'), alpha=0.6)
    parse_fusion("weighted:0.6").name     # 'weighted:0.6:fp,fr' (what SQL's fusion_name() says)
    parse_fusion("max:fp,fr,m2s2l_app")   # the largest of three streams
    parse_fusion("weighted:0.75:fp,fr,presence")  # 0.75 x mean(fp, fr) + 0.25 x presence
    parse_fusion("fr")                    # one stream as it is
    resolve_fusion("oracle", ["fr", "fp"], allow_oracle=True).name   # 'oracle:fp,fr' (eval only)

This module is the one parser and namer of fusion specs (the query layer, ``raystack
eval`` and the report all call it); the SQL ``fused()`` macro is the one place the
streams are combined, and the SQL ``auto_choice()`` macro (``schemas/sql/v3_fusion.sql``)
the one definition of what ``auto`` picks: :func:`auto_choice` asks DuckDB. The canonical
:attr:`Fusion.name` is stored with calibrated thresholds and shown in every result;
parsing it again gives the same fusion. Only ``oracle`` (VADMamba's per-video choice by
test AUC) uses labels: it parses only where ``allow_oracle`` is passed, i.e. in
:mod:`raystack.eval`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from raystack.errors import RaystackError
from raystack.store.schema import FUSION_SQL, sql_text

DEFAULT_PAIR = ("fp", "fr")
KINDS = ("stream", "weighted", "max", "oracle")
# Which stream of a pair comes first: the frame stream (alpha weighs it; oracle keeps it on
# ties), then the motion stream, then any other stream by name.
STREAM_ORDER = {"fp": 0, "m2s2l_app": 0, "fr": 1, "m2s2l_mot": 1}
_STREAM = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class FusionError(RaystackError, ValueError):
    """A fusion spec cannot be parsed or does not fit the streams of a run."""


@dataclass(frozen=True)
class Fusion:
    """One way to turn score streams into a single score (no labels involved)."""

    kind: str  # 'stream' (one model as it is), 'weighted', 'max' or 'oracle' (eval only)
    streams: tuple[str, ...]  # the model names it reads, in order
    # 'weighted': alpha weighs the mean of all streams but the last, 1 - alpha the last one
    # (with two streams, alpha weighs streams[0]); unused otherwise.
    alpha: float = 0.5

    @property
    def name(self) -> str:
        """Canonical text, identical to SQL ``fusion_name(fusion, alpha, streams)``."""
        if self.kind == "weighted":
            return f"weighted:{self.alpha:g}:{','.join(self.streams)}"
        if self.kind in ("max", "oracle"):
            return f"{self.kind}:{','.join(self.streams)}"
        return self.streams[0]

    def macro_args(self) -> dict:
        """Arguments of the SQL macros ``fused``/``flags``/``events``: fusion, alpha, streams.

        Raises:
            FusionError: for ``oracle``, which needs labels and so is no macro's fusion.
        """
        if self.kind == "oracle":
            msg = (f"fusion {self.name!r} chooses streams with test labels; query "
                   f"fused(fusion := s) for each of {list(self.streams)} and choose per video")
            raise FusionError(msg)
        fusion = self.streams[0] if self.kind == "stream" else self.kind
        streams = list(self.streams) if self.kind != "stream" else list(DEFAULT_PAIR)
        return {"fusion": fusion, "alpha": float(self.alpha), "streams": streams}


def _streams(text: str, spec: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [n for n in names if not _STREAM.fullmatch(n) or n in ("weighted", "max", "oracle")]
    if not names or bad:
        msg = (f"fusion {spec!r}: stream names must be model names like fp, fr, m2s2l_app; "
               f"got {text!r}")
        raise FusionError(msg)
    if len(set(names)) != len(names):
        msg = f"fusion {spec!r} names a stream twice"
        raise FusionError(msg)
    return names


def order_streams(streams: Sequence[str]) -> list[str]:
    """``streams`` in :data:`STREAM_ORDER`: ``["fr", "diff", "fp"]`` -> ``["fp", "fr", "diff"]``."""
    return sorted(streams, key=lambda s: (STREAM_ORDER.get(s, 2), s))


def parse_fusion(spec: str, *, allow_oracle: bool = False) -> Fusion:
    """Parse ``fp``, ``weighted[:ALPHA[:A,B,...]]`` or ``max[:A,B,...]`` (defaults: fp,fr;
    0.5), and, with ``allow_oracle`` (evaluation only), ``oracle[:A,B]``.

    ``weighted`` over more than two streams weighs the mean of all but the last by ALPHA
    against the last: ``weighted:0.75:fp,fr,presence`` is the learned pair's plain mean with
    a quarter of the scene prior's stream, one weight chosen on validation instead of a
    grid of them.

    Raises:
        FusionError: ``oracle`` without ``allow_oracle``, an oracle over other than two
            streams, a weighted fusion of fewer than two, an alpha outside [0, 1], bad
            names.
    """
    text = str(spec).strip()
    head, _, rest = text.partition(":")
    if head == "oracle" and allow_oracle:
        streams = _streams(rest, spec) if rest else DEFAULT_PAIR
        if len(streams) != 2:
            msg = (f"fusion {spec!r}: oracle chooses between exactly two streams, "
                   f"got {list(streams)}")
            raise FusionError(msg)
        return Fusion("oracle", streams)
    if head == "oracle":
        msg = (
            "fusion 'oracle' picks streams with the test labels; it exists only in "
            "`raystack eval`. Use a model name, weighted[:ALPHA] or max here."
        )
        raise FusionError(msg)
    if head == "weighted":
        alpha_text, _, names = rest.partition(":")
        try:
            alpha = float(alpha_text) if alpha_text else 0.5
        except ValueError as e:
            msg = f"fusion {spec!r}: alpha {alpha_text!r} is not a number"
            raise FusionError(msg) from e
        if not 0.0 <= alpha <= 1.0:
            msg = f"fusion {spec!r}: alpha must be in [0, 1], got {alpha}"
            raise FusionError(msg)
        streams = _streams(names, spec) if names else DEFAULT_PAIR
        if len(streams) < 2:
            msg = f"fusion {spec!r}: weighted fuses two or more streams, got {list(streams)}"
            raise FusionError(msg)
        return Fusion("weighted", streams, alpha)
    if head == "max":
        return Fusion("max", _streams(rest, spec) if rest else DEFAULT_PAIR)
    if rest:
        msg = f"fusion {spec!r}: expected a model name, weighted[:ALPHA[:A,B,...]] or max[:A,B,...]"
        raise FusionError(msg)
    streams = _streams(head, spec)
    if len(streams) > 1:  # "fr,fp" once silently meant fr alone
        msg = (f"fusion {spec!r} names {len(streams)} streams; one stream is a model name, "
               f"combine streams with weighted:ALPHA:{','.join(streams[:2])} or "
               f"max:{','.join(streams)}")
        raise FusionError(msg)
    return Fusion("stream", streams)


@cache
def auto_choice(available: tuple[str, ...]) -> tuple[str, str, str] | None:
    """What ``auto`` picks from a run's streams, by the SQL macro ``auto_choice``:
    ``("stream", s, s)``, ``("weighted", first, second)`` or None (no single choice).

    The macro reads no table, so an empty in-memory DuckDB evaluates it; the answer depends
    only on the streams, so it is cached."""
    import duckdb

    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                             "autoload_known_extensions": False})
    try:
        con.execute(sql_text(FUSION_SQL))
        kind, s1, s2 = con.execute(
            "SELECT c.kind, c.s1, c.s2 FROM (SELECT auto_choice(?::VARCHAR[]) AS c)",
            [list(available)]).fetchone()
    finally:
        con.close()
    return None if kind is None else (kind, s1, s2)


def resolve_fusion(spec: str | None, available: Sequence[str], *, alpha: float | None = None,
                   allow_oracle: bool = False) -> Fusion:
    """The fusion to use on a run whose score streams are ``available``.

    ``None`` or ``"auto"``: the only learned stream if there is one, else the fixed,
    label-free ``weighted:0.5`` of the one pair the run has (fp,fr or m2s2l_app,m2s2l_mot):
    the SQL rule, :func:`auto_choice`. Any other spec must name streams the run has.

    Args:
        alpha: the weight of "auto" (instead of 0.5), and then a bare ``"weighted"`` is the
            run's auto pair at that weight too (the report's ``--fusion``/``--alpha``).
        allow_oracle: accept ``oracle[:A,B]`` (evaluation only); a bare ``"oracle"`` takes
            the first two streams of the run in :func:`order_streams`.

    Raises:
        FusionError: naming the missing streams and the ones the run has.
    """
    avail = sorted(set(available))
    if not avail:
        msg = "the selected run(s) have no score rows, so there is nothing to fuse"
        raise FusionError(msg)
    text = "auto" if spec is None else str(spec).strip()
    if alpha is not None and text in ("auto", "weighted"):
        fz = resolve_fusion("auto", avail)
        if fz.kind == "weighted":
            return Fusion("weighted", fz.streams, float(alpha))
        if text == "weighted":
            msg = f"weighted fusion needs two streams; run has only {order_streams(avail)}"
            raise FusionError(msg)
        return fz
    if text == "oracle" and allow_oracle:
        spec = "oracle:" + ",".join(order_streams(avail)[:2])
    if text == "auto":
        pick = auto_choice(tuple(avail))
        if pick is not None and pick[0] == "stream":
            return Fusion("stream", (pick[1],))
        if pick is not None:
            return Fusion("weighted", pick[1:], 0.5)
        msg = (f"the run has streams {avail}; choose with --fusion (a stream, "
               "weighted:ALPHA:A,B or max:A,B,...)")
        raise FusionError(msg)
    fusion = parse_fusion(spec, allow_oracle=allow_oracle)
    missing = [s for s in fusion.streams if s not in avail]
    if missing:
        msg = f"fusion {fusion.name!r} needs streams {missing}, but the run has only {avail}"
        raise FusionError(msg)
    return fusion
