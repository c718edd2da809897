"""Great Expectations imported without scipy.stats and altair (etl.quality.gx_import), and the
expectation that needs them still judged by them."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a fresh interpreter: this process may have imported GX (or scipy) already.
SCRIPT = textwrap.dedent(
    """
    import sys
    import duckdb
    from etl.quality.gx_import import import_great_expectations
    from etl.quality.batch import parse_suite, run_suite

    import_great_expectations()
    print("after import:", "scipy.stats" in sys.modules, "altair" in sys.modules)

    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE t AS SELECT (i % 4) * 0.5 AS x FROM range(400) r(i)")
    kl = {"type": "expect_column_kl_divergence_to_be_less_than", "meta": {"severity": "warn"},
          "kwargs": {"column": "x", "threshold": 0.1,
                     "partition_object": {"bins": [0, 1, 2], "weights": None}}}
    for weights in ([0.5, 0.5], [0.9, 0.1]):
        kl["kwargs"]["partition_object"]["weights"] = weights
        suite = parse_suite({"name": "s", "expectations": [kl]})
        (result,) = run_suite(con, "t", suite, {})
        print("kl:", result.success, result.observed_value, result.details.get("exception"))
    print("after run:", "scipy.stats" in sys.modules)
    from great_expectations.expectations.core import expect_column_kl_divergence_to_be_less_than
    import altair
    print("chart:", expect_column_kl_divergence_to_be_less_than.alt.Chart is altair.Chart)
    """
)


def test_gx_imports_without_scipy_stats_and_altair_and_still_uses_them(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "w.duckdb")],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.splitlines()  # fmt: skip
    assert out[0] == "after import: False False"
    # Half the rows below 1, half above: no divergence from 50/50, about 0.51 from 90/10.
    assert out[1] == "kl: True 0.0 None"
    success, observed, exception = out[2].split(" ")[1:]
    assert (success, exception) == ("False", "None")
    assert abs(float(observed) - 0.5108) < 0.001
    assert out[3] == "after run: True"
    assert out[4] == "chart: True"
