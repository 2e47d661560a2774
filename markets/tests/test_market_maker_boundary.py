"""The market maker is an outside client: its library imports nothing of Django or of the exchange's apps.

It may only use the standard library, its HTTP and WebSocket clients, and
its own modules; so it can never reach the database, the engine or Redis
except through the public API.  (The management command that starts it is
the one place that reads Django settings.)  This reads the source, so it also
catches imports hidden inside functions.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "market_maker"
ALLOWED_THIRD_PARTY = {"httpx", "websockets"}


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.name}: use absolute imports"
            names.add(node.module or "")
    return names


def test_the_market_maker_imports_only_the_standard_library_its_clients_and_itself():
    offenders = {}
    for path in sorted(PACKAGE.glob("*.py")):
        bad = {
            name
            for name in imported_modules(path)
            if name.split(".")[0] not in sys.stdlib_module_names
            and name.split(".")[0] not in ALLOWED_THIRD_PARTY
            and not name.startswith("markets.market_maker")
        }
        if bad:
            offenders[path.name] = sorted(bad)
    assert offenders == {}


def test_the_check_sees_the_modules_it_guards():
    assert {p.name for p in PACKAGE.glob("*.py")} >= {"quoting.py", "bot.py", "client.py", "pricing.py"}
    assert "httpx" in imported_modules(PACKAGE / "client.py")
