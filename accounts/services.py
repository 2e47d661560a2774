"""The only module that moves money.

Every change to a balance goes through :func:`post_entries`: the entries are
written to the ledger and summed into the balance rows in the same
transaction.  Balance rows are locked in one fixed order (by user, then asset)
so two writers never deadlock, and the database's ``CHECK (available >= 0)``
refuses any change that would overdraw, however many writers race.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

import pyotp
from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import ApiKey, ApiScope, Asset, Balance, LedgerEntry, RecoveryCode, TwoFactorDevice, User
from accounts.selectors import external_user_id
from exchange_site import sql, throttling
from exchange_site.amounts import decimal_places, plain
from exchange_site.client_ip import parse_allowlist
from exchange_site.errors import ApplicationError
from exchange_site.redis import get_redis

logger = logging.getLogger(__name__)

AVAILABLE = LedgerEntry.Bucket.AVAILABLE.value
LOCKED = LedgerEntry.Bucket.LOCKED.value
_OVERDRAW_CONSTRAINTS = ("balance_available_not_negative", "balance_locked_not_negative")
_COPY_THRESHOLD = 64


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger line to post; ``amount`` is signed."""

    user_id: int
    asset_id: int
    bucket: str
    amount: Decimal
    reason: str
    order_id: int | None = None
    trade_id: int | None = None
    note: str = ""


def is_overdraw(error: IntegrityError) -> bool:
    """True when ``error`` is the database refusing a negative balance."""
    diag = getattr(error.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) in _OVERDRAW_CONSTRAINTS


def post_entries(entries: Sequence[Entry]) -> None:
    """Write ``entries`` to the ledger and apply them to balances.

    Call inside a transaction.  Raises ``IntegrityError`` (see :func:`is_overdraw`)
    if a balance would go negative; the caller's transaction must then roll back.
    The outside-world account has no balance row: its entries are its record.
    """
    if not entries:
        return
    external = external_user_id()
    deltas: dict[tuple[int, int], list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for e in entries:
        if e.user_id != external and e.amount:
            deltas[(e.user_id, e.asset_id)][0 if e.bucket == AVAILABLE else 1] += e.amount
    rows = sorted((key, d) for key, d in deltas.items() if d[0] or d[1])
    with connection.cursor() as cursor:
        if rows:
            _apply_deltas(cursor, rows)
        _insert_ledger(cursor, entries)


def _apply_deltas(cursor, rows: list[tuple[tuple[int, int], list[Decimal]]], *, lock: bool = True) -> None:
    """Add each (available, locked) delta to its balance row; ``rows`` are sorted by (user, asset).

    An upsert cannot do this: PostgreSQL checks ``available >= 0`` on the row it
    proposes to insert (the bare delta) before it sees the conflict.  So: lock
    the existing rows in key order (``lock=False``: the caller already did),
    update them, and insert the ones missing.
    """
    users, assets, available, locked = sql.columns([(*key, *delta) for key, delta in rows], 4)
    if lock and len(rows) > 1:  # one row needs no ordering: the UPDATE locks it
        cursor.execute(
            "SELECT 1 FROM accounts_balance WHERE (user_id, asset_id) IN"
            f" (SELECT * FROM {sql.unnest(['bigint', 'bigint'])}) ORDER BY user_id, asset_id FOR UPDATE",
            [users, assets],
        )
    cursor.execute(
        "UPDATE accounts_balance AS b SET available = b.available + v.available, locked = b.locked + v.locked"
        f" FROM {sql.unnest(['bigint', 'bigint', 'numeric', 'numeric'])} AS v(user_id, asset_id, available, locked)"
        " WHERE b.user_id = v.user_id AND b.asset_id = v.asset_id RETURNING b.user_id, b.asset_id",
        [users, assets, available, locked],
    )
    updated = set(cursor.fetchall())
    missing = [(*key, *delta) for key, delta in rows if key not in updated]
    if missing:
        # A balance never held is zero: a negative delta fails the CHECK, i.e. an overdraw.
        cursor.execute(
            "INSERT INTO accounts_balance (user_id, asset_id, available, locked)"
            f" SELECT * FROM {sql.unnest(['bigint', 'bigint', 'numeric', 'numeric'])}"
            " ON CONFLICT (user_id, asset_id) DO UPDATE SET"
            " available = accounts_balance.available + EXCLUDED.available,"
            " locked = accounts_balance.locked + EXCLUDED.locked",
            sql.columns(missing, 4),
        )


_LEDGER_COLUMNS = "user_id, asset_id, bucket, amount, reason, order_id, trade_id, note"
_LEDGER_TYPES = ["bigint", "bigint", "varchar", "numeric", "varchar", "bigint", "bigint", "varchar"]


def _insert_ledger(cursor, entries: Sequence[Entry]) -> None:
    ledger = [
        (e.user_id, e.asset_id, e.bucket, e.amount, e.reason, e.order_id, e.trade_id, e.note)
        for e in entries
        if e.amount
    ]
    if len(ledger) >= _COPY_THRESHOLD:  # the engine's large batches: COPY streams rows fastest
        with cursor.cursor.copy(f"COPY accounts_ledgerentry ({_LEDGER_COLUMNS}) FROM STDIN") as copy:
            for row in ledger:
                copy.write_row(row)
    elif ledger:
        cursor.execute(
            f"INSERT INTO accounts_ledgerentry ({_LEDGER_COLUMNS}) SELECT * FROM {sql.unnest(_LEDGER_TYPES)}",
            sql.columns(ledger, len(_LEDGER_TYPES)),
        )


def _check_amount(asset: Asset, amount: Decimal) -> None:
    if not amount.is_finite() or amount <= 0:
        raise ApplicationError(f"The amount must be a positive number, not {amount:f}.", code="invalid_amount")
    if amount >= Decimal(10) ** 18 or decimal_places(amount) > asset.precision:
        raise ApplicationError(
            f"{plain(amount)} is not a valid amount of {asset.symbol} (at most {asset.precision} decimals).",
            code="invalid_amount",
        )


def announce_balances(pairs: list[tuple[int, int]], *, change: dict[str, str] | None = None) -> None:
    """After a committed change outside the engine: push the new amounts to their owners' ``balances`` stream.

    ``change`` says what moved (``{"asset", "amount", "reason"}``) for a deposit or withdrawal.
    """
    from marketdata import broadcast  # market data depends on accounts' tables, not the other way round

    broadcast.publish(broadcast.balance_messages(pairs, time_ms=int(time.time() * 1000), change=change))


def deposit(*, user: User, asset: Asset, amount: Decimal, note: str = "") -> None:
    """Credit ``amount`` of ``asset`` to ``user`` from the outside world (an operator's action)."""
    _check_amount(asset, amount)
    with transaction.atomic(durable=True):
        post_entries(
            [
                Entry(user.id, asset.id, AVAILABLE, amount, LedgerEntry.Reason.DEPOSIT, note=note),
                Entry(external_user_id(), asset.id, AVAILABLE, -amount, LedgerEntry.Reason.DEPOSIT, note=note),
            ]
        )
    announce_balances(
        [(user.id, asset.id)], change={"asset": asset.symbol, "amount": plain(amount), "reason": "deposit"}
    )
    logger.info("deposit", extra={"user": user.pk, "asset": asset.symbol, "amount": amount})


def _insufficient_funds(asset: Asset, amount: Decimal) -> ApplicationError:
    return ApplicationError(
        f"Not enough {asset.symbol} available to withdraw {plain(amount)}.",
        code="insufficient_funds",
        details={"asset": asset.symbol, "amount": str(amount)},
    )


def withdraw(*, user: User, asset: Asset, amount: Decimal, note: str = "") -> None:
    """Pay ``amount`` of ``asset`` out of ``user``'s available balance to the outside world."""
    _check_amount(asset, amount)
    try:
        with transaction.atomic(durable=True):
            post_entries(
                [
                    Entry(user.id, asset.id, AVAILABLE, -amount, LedgerEntry.Reason.WITHDRAWAL, note=note),
                    Entry(external_user_id(), asset.id, AVAILABLE, amount, LedgerEntry.Reason.WITHDRAWAL, note=note),
                ]
            )
    except IntegrityError as error:
        if is_overdraw(error):
            raise _insufficient_funds(asset, amount) from None
        raise
    announce_balances(
        [(user.id, asset.id)], change={"asset": asset.symbol, "amount": plain(-amount), "reason": "withdrawal"}
    )
    logger.info("withdrawal", extra={"user": user.pk, "asset": asset.symbol, "amount": amount})


@dataclass(frozen=True, slots=True)
class Hold:
    """Funds one order of a batch needs held."""

    asset_id: int
    amount: Decimal
    order_id: int


def lock_funds_batch(*, user_id: int, holds: Sequence[Hold]) -> set[int]:
    """Hold funds for several orders of one user; return the order ids whose funds were held.

    Call inside the transaction that stores the orders.  Set-based: the user's
    balance rows are locked in asset order (SELECT ... FOR UPDATE), each hold
    is granted in turn while the available balance covers it (a refused one
    does not stop later, smaller ones), then one UPDATE applies the totals and
    one INSERT writes every ledger entry.
    """
    assets = sorted({h.asset_id for h in holds})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT asset_id, available FROM accounts_balance WHERE user_id = %s AND asset_id = ANY(%s)"
            " ORDER BY asset_id FOR UPDATE",
            [user_id, assets],
        )
        available = dict(cursor.fetchall())
        granted: list[Hold] = []
        totals: dict[int, Decimal] = defaultdict(Decimal)
        for hold in holds:
            if available.get(hold.asset_id, Decimal(0)) >= hold.amount:
                available[hold.asset_id] -= hold.amount
                totals[hold.asset_id] += hold.amount
                granted.append(hold)
        if granted:
            rows = [((user_id, asset_id), [-total, total]) for asset_id, total in sorted(totals.items())]
            _apply_deltas(cursor, rows, lock=False)  # locked above, in the same order
            entries = [
                entry
                for h in granted
                for entry in lock_entries(user_id=user_id, asset_id=h.asset_id, amount=h.amount, order_id=h.order_id)
            ]
            _insert_ledger(cursor, entries)
    return {h.order_id for h in granted}


def insert_holding_funds(
    *,
    user_id: int,
    asset_id: int,
    amount: Decimal,
    table: str,
    row: Sequence[tuple[str, str, object]],
    also: tuple[str, dict[str, object]] | None = None,
) -> tuple[int, object] | None:
    """Insert one row of ``table`` (an order) and hold ``amount`` for it, in ONE statement.

    The guarded UPDATE of the balance, the INSERT of the row and the two ledger
    entries are data-modifying CTEs of a single statement, so they are one
    transaction and one database round trip: the row exists only if the funds
    were held.  ``row`` is ``(column, sql_type, value)`` triples; the table
    needs ``id`` and ``created_at`` columns.  Returns ``(id, created_at)``, or
    None, having written nothing, when the available balance does not cover
    ``amount``.  Raises IntegrityError for the row's own constraints.

    ``also`` is one more data-modifying CTE and its parameters, run in the same
    statement; it may select ``FROM record`` (the inserted row) so it writes
    only when the row was inserted, and a constraint it trips undoes it all.
    Order entry counts the user's open orders there (docs/decisions/010).
    """
    params: dict[str, object] = {
        "amount": amount,
        "user": user_id,
        "asset": asset_id,
        "reason": LedgerEntry.Reason.ORDER_LOCK.value,
        "available": AVAILABLE,
        "locked": LOCKED,
    }
    columns, values = [], []
    for index, (column, sql_type, value) in enumerate(row):
        columns.append(column)
        values.append(f"%(v{index})s::{sql_type}")
        params[f"v{index}"] = value
    # Alone, the statement is its own transaction.  Inside a caller's transaction
    # a savepoint keeps a refused row (a constraint) from aborting the caller's work.
    scope = transaction.atomic() if connection.in_atomic_block else nullcontext()
    extra = ""
    if also is not None:
        extra = f" also AS ({also[0]}),"
        params |= also[1]
    with scope, connection.cursor() as cursor:
        cursor.execute(
            "WITH held AS ("
            " UPDATE accounts_balance SET available = available - %(amount)s, locked = locked + %(amount)s"
            " WHERE user_id = %(user)s AND asset_id = %(asset)s AND available >= %(amount)s RETURNING 1),"
            f" record AS (INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} FROM held"
            " RETURNING id, created_at),"
            f"{extra}"
            " entries AS (INSERT INTO accounts_ledgerentry (user_id, asset_id, bucket, amount, reason, order_id, note)"
            " SELECT %(user)s, %(asset)s, v.bucket, v.amount, %(reason)s, record.id, '' FROM record,"
            " (VALUES (%(available)s, -%(amount)s::numeric), (%(locked)s, %(amount)s::numeric)) AS v(bucket, amount))"
            " SELECT id, created_at FROM record",
            params,
        )
        return cursor.fetchone()


def lock_entries(*, user_id: int, asset_id: int, amount: Decimal, order_id: int) -> list[Entry]:
    """Entries that hold ``amount`` for an order: available -> locked."""
    return [
        Entry(user_id, asset_id, AVAILABLE, -amount, LedgerEntry.Reason.ORDER_LOCK, order_id=order_id),
        Entry(user_id, asset_id, LOCKED, amount, LedgerEntry.Reason.ORDER_LOCK, order_id=order_id),
    ]


def unlock_entries(*, user_id: int, asset_id: int, amount: Decimal, order_id: int) -> list[Entry]:
    """Entries that give back what an order no longer needs: locked -> available."""
    return [
        Entry(user_id, asset_id, LOCKED, -amount, LedgerEntry.Reason.ORDER_UNLOCK, order_id=order_id),
        Entry(user_id, asset_id, AVAILABLE, amount, LedgerEntry.Reason.ORDER_UNLOCK, order_id=order_id),
    ]


# --- API keys -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _cipher_for(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    # The key derived from SECRET_KEY comes last: it encrypts only where no key is configured
    # (development, tests) and still decrypts what it encrypted until ``reencrypt_secrets`` ran.
    derived = base64.urlsafe_b64encode(hashlib.sha256(("api-key-secrets:" + secret_key).encode()).digest())
    return MultiFernet([*(Fernet(key) for key in keys), Fernet(derived)])


def _fernet() -> MultiFernet:
    """The cipher for secrets at rest (API-key and two-factor secrets): ``SECRETS_ENCRYPTION_KEYS``, newest first.

    The first key encrypts; every key (and, last, the key derived from
    ``SECRET_KEY``) decrypts, so keys can be rotated without reissuing
    anything: put the new key first, run ``manage.py reencrypt_secrets``,
    then drop the old one.
    """
    return _cipher_for(tuple(settings.SECRETS_ENCRYPTION_KEYS), settings.SECRET_KEY)


def secrets_reencrypt(*, batch_size: int = 500, progress=None) -> dict[str, int]:
    """Re-encrypt every stored secret with the first configured key; how many of each kind were rewritten.

    Each batch is its own transaction, so a long run holds no lock for long and
    can be interrupted and run again (re-encrypting is idempotent).
    ``progress(kind, done, total)`` is called after each batch.
    """
    cipher = _fernet()
    rewritten = {}
    for kind, model in (("api_keys", ApiKey), ("two_factor_devices", TwoFactorDevice)):
        ids = list(model.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), batch_size):
            with transaction.atomic(durable=True):
                rows = list(model.objects.select_for_update().filter(pk__in=ids[start : start + batch_size]))
                for row in rows:
                    row.secret_encrypted = cipher.rotate(bytes(row.secret_encrypted))
                model.objects.bulk_update(rows, ["secret_encrypted"])
            if progress is not None:
                progress(kind, min(start + batch_size, len(ids)), len(ids))
        rewritten[kind] = len(ids)
    logger.info("secrets re-encrypted", extra=rewritten)
    return rewritten


def api_key_secret(api_key: ApiKey) -> str:
    """The HMAC secret of ``api_key`` (stored encrypted: see ``_fernet``)."""
    return _fernet().decrypt(bytes(api_key.secret_encrypted)).decode()


def api_key_create(
    *,
    user: User,
    label: str = "",
    scopes: Sequence[str] = (ApiScope.READ, ApiScope.TRADE),
    ip_allowlist: Sequence[str] = (),
    otp_code: str | None = None,
    by_operator: bool = False,
) -> tuple[ApiKey, str]:
    """Create a key; return it with its secret, which is never shown again.

    A key with the ``withdraw`` scope can move money out, so it needs an IP
    allowlist and, unless an operator makes it on the server
    (``manage.py create_api_key``), a current code from the user's
    two-factor device.  ``ip_allowlist`` restricts any key when given.
    """
    chosen = sorted({str(scope) for scope in scopes})
    unknown = [scope for scope in chosen if scope not in ApiScope.values]
    if unknown or not chosen:
        raise ApplicationError(
            f"Scopes must be chosen from {', '.join(ApiScope.values)}; got {', '.join(unknown) or 'none'}.",
            code="invalid_scopes",
            details={"allowed": list(ApiScope.values)},
        )
    try:
        networks = parse_allowlist(ip_allowlist)
    except ValueError as error:
        raise ApplicationError(str(error), code="invalid_ip_allowlist") from None
    if ApiScope.WITHDRAW in chosen:
        if not networks:
            raise ApplicationError(
                "A key with the withdraw scope needs an IP allowlist: the addresses your bot calls from.",
                code="ip_allowlist_required",
            )
        if not by_operator:
            two_factor_check(user=user, code=otp_code)
    secret = secrets.token_urlsafe(32)
    with transaction.atomic(durable=True):
        api_key = ApiKey.objects.create(
            user=user,
            label=label[:64],
            key=secrets.token_urlsafe(24),
            secret_encrypted=_fernet().encrypt(secret.encode()),
            scopes=chosen,
            ip_allowlist=networks,
        )
    logger.info("api key created", extra={"user": user.pk, "scopes": ",".join(chosen), "ips": len(networks)})
    return api_key, secret


def api_key_revoke(*, user: User, key_id: int) -> ApiKey:
    """Revoke one of ``user``'s keys; requests signed with it are refused from now on."""
    with transaction.atomic(durable=True):
        api_key = ApiKey.objects.select_for_update().filter(user=user, pk=key_id).first()
        if api_key is None:
            raise ApplicationError(f"You have no API key with id {key_id}.", code="api_key_not_found", status=404)
        if api_key.revoked_at is None:
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            # Web workers cache keys for a few seconds; this marker refuses the key at once.
            marker = revoked_marker(api_key.key)
            transaction.on_commit(lambda: get_redis().set(marker, 1, ex=REVOKED_MARKER_SECONDS))
    return api_key


# Longer than any worker caches a key (accounts.authentication.API_KEY_CACHE_SECONDS).
REVOKED_MARKER_SECONDS = 3600


def revoked_marker(key: str) -> str:
    return f"api:revoked:{key}"


# --- Two-factor authentication (TOTP, RFC 6238) ----------------------------------------------

TOTP_STEP_SECONDS = 30
# A code from the step before or after the current one is accepted: clocks drift and people type slowly.
TOTP_DRIFT_STEPS = 1


def _totp_secret(device: TwoFactorDevice) -> str:
    return _fernet().decrypt(bytes(device.secret_encrypted)).decode()


def two_factor_begin(*, user: User) -> tuple[TwoFactorDevice, str]:
    """Start enabling two-factor authentication: a fresh secret for the user's authenticator app.

    The device guards nothing until :func:`two_factor_confirm` sees a code from it.
    Starting again replaces a pending (unconfirmed) secret.
    """
    secret = pyotp.random_base32()
    with transaction.atomic(durable=True):
        device = TwoFactorDevice.objects.select_for_update().filter(user=user).first()
        if device is not None and device.confirmed_at is not None:
            raise ApplicationError("Two-factor authentication is already on.", code="two_factor_already_enabled")
        if device is None:
            device = TwoFactorDevice(user=user)
        device.secret_encrypted = _fernet().encrypt(secret.encode())
        device.last_step = 0
        device.save()
    return device, secret


def two_factor_pending_secret(*, user: User) -> str | None:
    """The secret of ``user``'s unconfirmed device, to show it again while they set up their app."""
    device = TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    return None if device is None else _totp_secret(device)


def two_factor_uri(*, user: User, secret: str) -> str:
    """The ``otpauth://`` URI an authenticator app reads (from a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=settings.EXCHANGE["TOTP_ISSUER"])


def _count_in_advance(key: str) -> tuple[int, int]:
    """Count one attempt under ``key`` for the lockout period its first attempt started; (attempts, seconds left).

    One atomic MULTI, before whatever is guarded is checked: however many
    requests race, each sees its own count, so no more than the limit get through.
    """
    pipe = get_redis().pipeline(transaction=True)
    pipe.set(key, 0, ex=settings.EXCHANGE["LOGIN_LOCKOUT_SECONDS"], nx=True)
    pipe.incr(key)
    pipe.ttl(key)
    _, attempts, ttl = pipe.execute()
    return attempts, max(int(ttl), 1)


def _count_code_attempt(device: TwoFactorDevice) -> str:
    """Count one code attempt against the device's owner before the code is checked; refuse past the limit.

    Counted in advance with one atomic MULTI (as login attempts are), so however
    many requests race, at most ``TWO_FACTOR_MAX_FAILURES`` codes are checked
    per ``LOGIN_LOCKOUT_SECONDS``: guessing a 6-digit code through the pages or
    the API stays hopeless.  Returns the counter's key, to forgive a right code.
    """
    key = f"two_factor:failures:{device.user_id}"
    attempts, wait = _count_in_advance(key)
    if attempts > settings.EXCHANGE["TWO_FACTOR_MAX_FAILURES"]:
        if attempts == settings.EXCHANGE["TWO_FACTOR_MAX_FAILURES"] + 1:
            logger.warning("two-factor codes locked", extra={"user": device.user_id})
        raise ApplicationError(
            f"Too many wrong two-factor codes: try again in {(wait + 59) // 60} min.",
            code="two_factor_locked",
            status=429,
            details={"retry_after": wait},
        )
    return key


def _use_code(device: TwoFactorDevice, code: str | None) -> None:
    """Accept ``code`` once: it must match a step near now not older than the last code used.

    The UPDATE ... WHERE last_step < step is atomic, so two requests racing
    with the same code cannot both pass.  Every attempt counts against
    :func:`_count_code_attempt`'s limit; a right code is forgiven.
    """
    code = (code or "").strip().replace(" ", "")
    if not code:
        raise ApplicationError(
            "Enter the 6-digit code from your authenticator app.", code="two_factor_code_required", status=403
        )
    attempts_key = _count_code_attempt(device)
    # Six ASCII digits or nothing: compare_digest refuses non-ASCII text with a TypeError.
    if code.isascii() and code.isdigit():
        totp = pyotp.TOTP(_totp_secret(device))
        now_step = int(time.time()) // TOTP_STEP_SECONDS
        for step in range(now_step - TOTP_DRIFT_STEPS, now_step + TOTP_DRIFT_STEPS + 1):
            if hmac.compare_digest(totp.generate_otp(step), code):
                if TwoFactorDevice.objects.filter(pk=device.pk, last_step__lt=step).update(last_step=step):
                    get_redis().decr(attempts_key)
                    return
                break  # that code was already used
    raise ApplicationError(
        "That code is not valid (or was already used); enter the current code from your authenticator app.",
        code="two_factor_code_invalid",
        status=403,
    )


def two_factor_enabled(user: User) -> bool:
    return TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def _confirmed_device(user: User) -> TwoFactorDevice:
    """``user``'s two-factor device, or ``two_factor_required`` (403) when it is off."""
    device = TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is None:
        raise ApplicationError(
            "This needs two-factor authentication: turn it on in your account first.",
            code="two_factor_required",
            status=403,
        )
    return device


def two_factor_check(*, user: User, code: str | None) -> None:
    """Refuse unless ``user`` has two-factor authentication on and ``code`` is a current, unused code.

    Only a code from the authenticator app: recovery codes are accepted by
    :func:`two_factor_check_login` alone (see there why).
    """
    _use_code(_confirmed_device(user), code)


def two_factor_confirm(*, user: User, code: str | None, password: str | None) -> list[str]:
    """Turn two-factor authentication on once the account's password and the pending device's code check out.

    The password, because whoever turns two-factor on decides which phone may
    move the money: a stolen session alone must not be able to (and a new
    device also holds withdrawals for ``WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S``,
    see :func:`withdrawal_request`).  Returns the new recovery codes, in plain
    text this once (only their hashes are kept).
    """
    device = TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=True).first()
    if device is None:
        raise ApplicationError(
            "Start setting up two-factor authentication first.", code="two_factor_not_pending", status=409
        )
    attempts_key = _count_code_attempt(device)  # a wrong password counts like a wrong code: no free guessing
    if not user.check_password(password or ""):
        raise ApplicationError(
            "Enter your account's password to turn two-factor authentication on.", code="password_invalid", status=403
        )
    get_redis().decr(attempts_key)
    _use_code(device, code)
    with transaction.atomic(durable=True):
        TwoFactorDevice.objects.filter(pk=device.pk).update(confirmed_at=timezone.now())
        codes = _replace_recovery_codes(device)
    logger.info("two-factor enabled", extra={"user": user.pk})
    return codes


def two_factor_disable(*, user: User, code: str | None) -> None:
    """Turn two-factor authentication off; it takes a current code, so a stolen session alone cannot.

    The recovery codes go with the device.
    """
    two_factor_check(user=user, code=code)
    with transaction.atomic(durable=True):
        RecoveryCode.objects.filter(device__user=user).delete()
        TwoFactorDevice.objects.filter(user=user).delete()
    logger.info("two-factor disabled", extra={"user": user.pk})


# Recovery codes: single-use stand-ins for the authenticator app, at the login's second step only.
#
# They are for getting back in when the phone is lost, and nothing else.  A withdrawal, or a key
# that can withdraw, takes a code from the app each time (two_factor_check accepts nothing else):
# a recovery code is a long-lived secret written down somewhere (a file, a drawer, a password
# manager), so whoever finds the paper could otherwise log in *and* move the money out at once.
# Nor do they turn two-factor off or make new codes: both take a code from the app.  A user who
# lost the app logs in with a recovery code and asks an operator to reset the device (the login
# page says so); money stays behind the device until then.

RECOVERY_CODE_COUNT = 10
# 12 characters from 31 (no 0/o, 1/l/i): ~59 bits, written as three groups of four.
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
_RECOVERY_LENGTH = 12


def _recovery_key() -> bytes:
    return hashlib.sha256(("recovery-codes:" + settings.SECRET_KEY).encode()).digest()


def _recovery_hash(normalized: str) -> str:
    """Keyed hash of a normalised recovery code: what is stored and looked up, never the code."""
    return hmac.new(_recovery_key(), normalized.encode(), hashlib.sha256).hexdigest()


def _normalize_recovery(text: str | None) -> str:
    """As typed, with any case, spaces or dashes: ``ABCD-efgh 2345`` -> ``abcdefgh2345``."""
    return "".join((text or "").split()).replace("-", "").lower()


def _looks_like_recovery(normalized: str) -> bool:
    return len(normalized) == _RECOVERY_LENGTH and not normalized.isdigit()


def _new_recovery_code() -> str:
    while True:
        code = "".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH))
        if _looks_like_recovery(code):  # all digits (about 1 in 10 million) would read as an app code
            return code


def _replace_recovery_codes(device: TwoFactorDevice) -> list[str]:
    """Drop ``device``'s recovery codes and make a fresh set; call inside a transaction.

    The device row is locked first, so two of these racing (two confirmations
    with adjacent codes, two regenerations) run one after the other and leave
    one whole set, never two sets side by side.
    """
    TwoFactorDevice.objects.select_for_update().filter(pk=device.pk).first()
    plain_codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.filter(device=device).delete()
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, code_hash=_recovery_hash(c)) for c in plain_codes)
    return ["-".join(c[i : i + 4] for i in range(0, _RECOVERY_LENGTH, 4)) for c in plain_codes]


def two_factor_recovery_regenerate(*, user: User, code: str | None) -> list[str]:
    """Replace ``user``'s recovery codes (the old ones stop working); it takes a current code from the app.

    Returns the new codes, in plain text this once.
    """
    device = _confirmed_device(user)
    _use_code(device, code)
    with transaction.atomic(durable=True):
        codes = _replace_recovery_codes(device)
    logger.info("recovery codes regenerated", extra={"user": user.pk})
    return codes


def two_factor_check_login(*, user: User, code: str | None) -> int | None:
    """The login's second step: a current code from the app, or one unused recovery code.

    Returns None for an app code; for a recovery code, how many remain (the
    page says so).  The recovery code is spent by one ``UPDATE ... WHERE
    used_at IS NULL``: of two requests racing with it, PostgreSQL lets one
    update the row and the other then finds it used.
    """
    device = _confirmed_device(user)
    normalized = _normalize_recovery(code)
    if not _looks_like_recovery(normalized):
        _use_code(device, code)
        return None
    spent = RecoveryCode.objects.filter(
        device=device, code_hash=_recovery_hash(normalized), used_at__isnull=True
    ).update(used_at=timezone.now())
    if not spent:
        raise ApplicationError(
            "That recovery code is not valid (or was already used).", code="recovery_code_invalid", status=403
        )
    remaining = RecoveryCode.objects.filter(device=device, used_at__isnull=True).count()
    logger.warning("login with a recovery code", extra={"user": user.pk, "remaining": remaining})
    return remaining


# --- Withdrawals requested by users ---------------------------------------------------------

_ADDRESS = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")


def withdrawal_request(
    *,
    user: User,
    asset: Asset,
    amount: Decimal,
    address: str,
    api_key: ApiKey | None = None,
    otp_code: str | None = None,
) -> None:
    """A user's own withdrawal of ``amount`` of ``asset`` to ``address``, paid out through :func:`withdraw`.

    From a session it takes a current two-factor code; with an API key the key
    must have the ``withdraw`` scope (such a key was made with a code and
    answers only from its allowlisted addresses).  The address is kept in the
    ledger entry's note; sending on-chain is outside this exchange.
    """
    if not _ADDRESS.match(address or ""):
        raise ApplicationError(
            "The address must be 1-128 letters, digits or ':._-'.", code="invalid_address", details={"field": "address"}
        )
    _check_withdrawal_hold(user)
    if api_key is not None:
        if not api_key.has_scope(ApiScope.WITHDRAW):
            raise ApplicationError(
                "This API key may not withdraw: it lacks the withdraw scope.",
                code="scope_required",
                status=403,
                details={"scope": ApiScope.WITHDRAW.value},
            )
    else:
        # Refuse what is plainly wrong before spending the user's code: a code is good once, so
        # spending it on a typo'd amount would make them wait for the next one.  The locked
        # check in :func:`withdraw` still decides; this unlocked read only saves the code.
        device = _confirmed_device(user)
        _check_amount(asset, amount)
        if amount > (Balance.objects.filter(user=user, asset=asset).values_list("available", flat=True).first() or 0):
            raise _insufficient_funds(asset, amount)
        _use_code(device, otp_code)
    withdraw(user=user, asset=asset, amount=amount, note=f"to {address}")


def _check_withdrawal_hold(user: User) -> None:
    """Refuse withdrawals for ``WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S`` after two-factor authentication was turned on.

    Whoever turns it on chooses the phone that authorises withdrawals; were that
    a thief with the password and the session, the hold gives the owner time to
    notice (the account page says when withdrawals open) before money can leave.
    """
    hold = settings.EXCHANGE["WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S"]
    confirmed_at = (
        TwoFactorDevice.objects.filter(user=user, confirmed_at__isnull=False)
        .values_list("confirmed_at", flat=True)
        .first()
    )
    if hold and confirmed_at is not None and (opens := confirmed_at + dt.timedelta(seconds=hold)) > timezone.now():
        raise ApplicationError(
            f"Withdrawals open {opens:%Y-%m-%d %H:%M} UTC, {hold // 3600} h after two-factor authentication was "
            "turned on (a protection in case it was not you).",
            code="withdrawal_hold",
            status=403,
            details={"opens_at": opens.isoformat()},
        )


# --- Login protection ----------------------------------------------------------------------


def _login_bucket(username: str) -> str:
    # Hashed: a username may hold any character, and Redis key names should not.
    return hashlib.sha256(username.strip().lower().encode()).hexdigest()[:32]


def _failures_key(username: str) -> str:
    return f"login:failures:{_login_bucket(username)}"


def login_attempt(*, username: str, ip: str) -> None:
    """Count one login attempt; refuse it, before any password is checked, when throttled or locked out.

    Rates per username and per client address are fixed windows in Redis.  The
    lockout counts every attempt that reaches the password check as a failure
    *in advance* (one atomic MULTI), and a successful login clears the count
    (:func:`login_succeeded`): so however many attempts race, at most
    ``LOGIN_LOCKOUT_FAILURES`` passwords or codes are checked per lockout
    period.  The period starts at the first failure.  Raises ``ApplicationError``
    ``login_throttled`` or ``login_locked`` (429, ``details.retry_after``).
    """
    for bucket, rate in (
        (f"login:user:{_login_bucket(username)}", settings.EXCHANGE["LOGIN_RATE_PER_USERNAME"]),
        (f"login:ip:{ip}", settings.EXCHANGE["LOGIN_RATE_PER_IP"]),
    ):
        wait = throttling.hit(bucket, rate=rate)
        if wait is not None:
            retry = max(int(wait + 0.999), 1)
            raise ApplicationError(
                f"Too many login attempts; try again in {retry} s.",
                code="login_throttled",
                status=429,
                details={"retry_after": retry},
            )
    attempts, wait = _count_in_advance(_failures_key(username))
    if attempts > settings.EXCHANGE["LOGIN_LOCKOUT_FAILURES"]:
        until = timezone.now() + dt.timedelta(seconds=wait)
        if attempts == settings.EXCHANGE["LOGIN_LOCKOUT_FAILURES"] + 1:
            logger.warning("login locked", extra={"until": until.isoformat()})
        raise ApplicationError(
            f"Too many failed logins for this account: it is locked until {until:%H:%M:%S} UTC "
            f"(in {(wait + 59) // 60} min). Try again then.",
            code="login_locked",
            status=429,
            details={"retry_after": wait, "until": until.isoformat()},
        )


def login_succeeded(*, username: str) -> None:
    """The password (and code, if asked) were right: the attempts counted against the lockout are forgiven."""
    get_redis().delete(_failures_key(username))
