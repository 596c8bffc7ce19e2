"""rs_gaussian_smooth against scipy, directly and through SQL, in any frame order."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest
from scipy.ndimage import gaussian_filter1d

from raystack.query.udf import register_udfs, smooth_lists


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 41, 200])
@pytest.mark.parametrize("sigma", [0.5, 3.0, 10.0])
def test_smooth_lists_is_scipy_mirror_in_frame_order(n, sigma):
    rng = np.random.default_rng(n)
    x = rng.random(n)
    frames = rng.permutation(n) * 3 + 16  # shuffled, with gaps: only the order matters
    got = smooth_lists(pa.array([x.tolist()]), pa.array([frames.tolist()]), pa.array([sigma]))
    order = np.argsort(frames)
    exp = np.empty(n)
    exp[order] = gaussian_filter1d(x[order], sigma, mode="mirror", truncate=4.0)
    np.testing.assert_allclose(np.asarray(got[0].as_py()), exp, rtol=0, atol=1e-12)


def test_nulls_and_no_smoothing_and_mismatched_lengths():
    got = smooth_lists(pa.array([[1.0, 2.0], None, [3.0]]), pa.array([[0, 1], None, [5]]),
                       pa.array([0.0, 1.0, None]))
    assert got.to_pylist() == [[1.0, 2.0], None, None]
    with pytest.raises(ValueError, match="same length"):
        smooth_lists(pa.array([[1.0, 2.0]]), pa.array([[0]]), pa.array([1.0]))


def test_registered_function_in_sql():
    con = duckdb.connect()
    register_udfs(con)
    got = con.sql(
        "SELECT rs_gaussian_smooth([0.0, 1.0, 0.0], [0, 1, 2], 1.0) AS s").fetchall()[0][0]
    np.testing.assert_allclose(got, gaussian_filter1d([0.0, 1.0, 0.0], 1.0, mode="mirror"))
