"""Signatures and one-time codes are compared only in constant time (``hmac.compare_digest``).

``==`` on a signature stops at the first differing byte, and the time it
takes tells an attacker how much of a forged signature was right.  Two
checks: a scan of the source for any ``==``/``!=``/``in`` touching a
signature, digest or code; and a signed request run with
``hmac.compare_digest`` wrapped, which must see the signature.
"""

from __future__ import annotations

import ast
import hmac
from pathlib import Path
from unittest import mock

import pytest
from rest_framework.test import APIClient

from accounts import authentication, services
from tests.signing import signed_request

ROOT = Path(__file__).resolve().parent.parent
# Every module that checks a signature or a one-time code.
MODULES = ["accounts/authentication.py", "accounts/services.py", "compat/signing.py", "compat/consumers.py"]
SECRET_WORDS = ("signature", "digest", "otp", "totp")
SIGNING_CALLS = ("sign", "hexdigest", "digest", "generate_otp", "now", "binance_signature")


def _mentions_secret(node: ast.AST) -> bool:
    """True when ``node`` (one side of a comparison) is, or computes, a signature or a code."""
    for sub in ast.walk(node):
        name = None
        if isinstance(sub, ast.Name):
            name = sub.id
        elif isinstance(sub, ast.Attribute):
            name = sub.attr
        if name and any(word in name.lower() for word in SECRET_WORDS):
            return True
        if isinstance(sub, ast.Call):
            func = sub.func
            called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if called in SIGNING_CALLS:
                return True
    return False


def unsafe_comparisons(source: str, filename: str = "<source>") -> list[str]:
    """``file:line`` of each ``==``, ``!=``, ``in`` or ``not in`` with a signature or code on either side."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if not isinstance(node, ast.Compare):
            continue
        if not any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            continue
        sides = [node.left, *node.comparators]
        # Comparing with None or an empty literal ("is a signature there at all?") leaks nothing.
        if any(isinstance(side, ast.Constant) and side.value in (None, "") for side in sides):
            continue
        if any(_mentions_secret(side) for side in sides):
            found.append(f"{filename}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_no_signature_or_code_is_compared_with_equality():
    found = [hit for path in MODULES for hit in unsafe_comparisons((ROOT / path).read_text(), path)]
    assert found == [], "compare signatures and codes with hmac.compare_digest:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "snippet",
    [
        "if sign(secret, payload) == signature: pass",
        "ok = expected_signature != request_signature",
        "if hmac.new(k, m, h).hexdigest() == sent: pass",
        "valid = totp.generate_otp(step) == code",
        "if signature.lower() in seen: pass",
    ],
)
def test_the_scan_catches_equality_on_a_signature(snippet):
    """The scan is not vacuous: each of these would fail the test above."""
    assert unsafe_comparisons(snippet)


def test_the_scan_lets_constant_time_compares_through():
    assert unsafe_comparisons("if not hmac.compare_digest(sign(secret, payload), signature.lower()): pass") == []
    assert unsafe_comparisons("if not signature: pass\nif signature is None: pass") == []


@pytest.mark.django_db
def test_a_signed_request_goes_through_compare_digest(alice, market):
    api_key, secret = services.api_key_create(user=alice)
    real = hmac.compare_digest
    with mock.patch.object(authentication.hmac, "compare_digest", side_effect=real) as spy:
        response = signed_request(APIClient(), "GET", "/api/v1/account/balances", key=api_key.key, secret=secret)
    assert response.status_code == 200
    sent = response.request["HTTP_X_SIGNATURE"]
    assert any(sent.lower() in call.args for call in spy.call_args_list)
