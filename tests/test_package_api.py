"""The top-level API stays the same whatever was imported before it."""

from __future__ import annotations

import subprocess
import sys


def test_top_level_names_are_functions_even_after_subpackages_load():
    code = (
        "import raystack, raystack.scan, raystack.train, raystack.query, raystack.models\n"
        "assert callable(raystack.connect) and callable(raystack.run_sql)\n"
        "assert callable(raystack.create_model) and callable(raystack.scan.scan)\n"
        "assert callable(raystack.train.train)\n"
        "assert set(raystack.__all__) >= {'connect', 'create_model', 'load_checkpoint'}\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_is_cheap():
    code = ("import sys, raystack\n"
            "heavy = {'torch', 'ray', 'duckdb'} & set(sys.modules)\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_query_layer_does_not_import_torch():
    code = ("import sys\n"
            "from raystack.query import connect, run_sql\n"
            "import raystack.query.udf, raystack.scoring\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
