"""The one error type services raise."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A refusal a person can act on: a stable snake_case ``code`` and a plain message.

    Services raise it before writing anything (or inside their transaction, so
    the write rolls back); the API turns it into a 4xx with the same code.
    """

    status_code = 400

    def __init__(self, message: str, *, code: str, details: dict[str, Any] | None = None, status: int = 400):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details or {}
        self.status_code = status

    def __repr__(self) -> str:
        return f"ApplicationError(code={self.code!r}, message={self.message!r})"
