"""Figures of the adversarial tests: printed (``-s``) and kept in ``.data/test/reliability/<name>.json``.

``make adversarial`` prints the kept files after its run; docs/reliability.md
quotes them.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings

FIGURES_DIR = Path(settings.BASE_DIR) / ".data" / "test" / "reliability"


def report(name: str, figures: dict) -> None:
    line = json.dumps({"test": name, **figures})
    print(line)
    FIGURES_DIR.mkdir(parents=True, exist_ok=True)
    (FIGURES_DIR / f"{name}.json").write_text(line + "\n")
