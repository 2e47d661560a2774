"""The matching core imports nothing but the standard library and its own events module.

``matching/book.py`` must run, be tested and be benchmarked without Django or
any app of the project (see STYLE.md, "The matching core").  This reads the
source, so it also catches imports hidden inside functions or ``TYPE_CHECKING``
blocks, which an import-time check would miss.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

MATCHING = Path(__file__).resolve().parents[1]
CORE_FILES = ("book.py", "events.py")
ALLOWED_PROJECT_MODULES = {"matching.events"}


def imported_modules(path: Path) -> set[str]:
    """Every module named by an import statement anywhere in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the matching package
                module = ".".join(["matching", *([] if node.module is None else node.module.split("."))])
            else:
                assert node.module is not None
                module = node.module
            if module == "matching":  # "from matching import x" / "from . import x" imports matching.x
                names.update(f"matching.{alias.name}" for alias in node.names)
            else:
                names.add(module)
    return names


def is_allowed(module: str) -> bool:
    top = module.split(".")[0]
    return module in ALLOWED_PROJECT_MODULES or (top in sys.stdlib_module_names and top != "matching")


@pytest.mark.parametrize("filename", CORE_FILES)
def test_core_imports_only_stdlib_and_events(filename: str) -> None:
    modules = imported_modules(MATCHING / filename)
    forbidden = sorted(m for m in modules if not is_allowed(m))
    assert not forbidden, f"matching/{filename} imports {forbidden}: the matching core must stay free of Django"


def test_events_import_nothing_from_the_project() -> None:
    modules = imported_modules(MATCHING / "events.py")
    assert not any(m.split(".")[0] == "matching" for m in modules)


def test_the_check_itself_catches_django_and_apps(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import collections\n"
        "from django.db import transaction\n"
        "def f():\n"
        "    import orders.models\n"
        "    from matching import models\n"
        "from . import engine\n"
    )
    modules = imported_modules(sample)
    assert sorted(m for m in modules if not is_allowed(m)) == [
        "django.db",
        "matching.engine",
        "matching.models",
        "orders.models",
    ]
