"""static/js/decimal.js, the order form's arithmetic, run by Node: exact where floats are not.

The form's checks (tick, lot, minimum value) must agree with the server's
Decimal arithmetic; a float would call 0.29 off a 0.01 tick.  Each case here is
checked against Python's Decimal too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from exchange_site.amounts import plain

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="Node.js is not installed")

MODULE = Path(__file__).resolve().parent.parent / "static" / "js" / "decimal.js"

CASES = [
    ("0.1", "0.2"), ("0.29", "0.01"), ("100.005", "0.01"), ("1.000", "0.001"), ("0.0005", "0.001"),
    ("123456789.123456789", "0.000000001"), ("50000", "0.00001"), ("0", "0.01"), ("-3.30", "1.1"),
]  # fmt: skip


def run_node(script: str) -> object:
    source = f"import * as dec from {json.dumps(MODULE.as_uri())};\n{script}"
    result = subprocess.run(
        ["node", "--input-type=module", "-e", source], capture_output=True, text=True, timeout=30, check=True
    )
    return json.loads(result.stdout)


def test_arithmetic_and_checks_match_pythons_decimal():
    script = f"""
    const out = [];
    for (const [a, b] of {json.dumps(CASES)}) {{
      const x = dec.parse(a), y = dec.parse(b);
      out.push([dec.format(dec.add(x, y)), dec.format(dec.sub(x, y)), dec.format(dec.mul(x, y)),
                dec.cmp(x, y), dec.isMultiple(x, y), dec.places(x)]);
    }}
    console.log(JSON.stringify(out));
    """
    for (a, b), (total, difference, product, order, multiple, places) in zip(CASES, run_node(script), strict=True):
        x, y = Decimal(a), Decimal(b)
        assert (total, difference, product) == (plain(x + y), plain(x - y), plain(x * y)), (a, b)
        assert order == (x > y) - (x < y), (a, b)
        assert multiple == (x % y == 0), (a, b)
        assert places == max(0, -(x.normalize().as_tuple().exponent)), (a, b)


def test_parse_refuses_what_is_not_a_plain_decimal_and_truncate_rounds_toward_zero():
    script = """
    const bad = ["", ".", "abc", "1e5", "1,5", "NaN", "Infinity", "--1", "1.2.3"].map((t) => dec.parse(t));
    const good = ["  7 ", ".5", "5.", "+2.50"].map((t) => dec.format(dec.parse(t)));
    const fee = dec.format(dec.truncate(dec.mul(dec.parse("0.123456789"), dec.parse("0.002")), 8));
    console.log(JSON.stringify({bad, good, fee, key: dec.normalise("100.10")}));
    """
    result = run_node(script)
    assert result["bad"] == [None] * 9
    assert result["good"] == ["7", "0.5", "5", "2.5"]
    assert result["fee"] == "0.00024691"  # 0.000246913578 rounded down, as the server charges fees
    assert result["key"] == "100.1"
