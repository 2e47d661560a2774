"""Listen keys: Binance's older way to open a user data stream (``POST /api/v3/userDataStream``).

A listen key names one user's private events for 60 minutes; ``PUT`` extends
it, ``DELETE`` ends it.  They live in Redis only: losing Redis ends every
stream, and clients ask for a new key (as they do when Binance expires one).
A user has at most one key at a time; asking again returns it, extended.
"""

from __future__ import annotations

import secrets

from accounts.models import User
from compat.errors import BinanceError
from compat.selectors import listen_key_name, listen_key_user_id
from exchange_site.redis import get_redis

LISTEN_KEY_SECONDS = 60 * 60


def _user_key(user_id: int) -> str:
    return f"compat:listen:user:{user_id}"


def listen_key_create(*, user: User) -> str:
    """The user's listen key, extended for 60 minutes; a new one if they have none."""
    redis = get_redis()
    current = redis.get(_user_key(user.id))
    if current is not None:
        listen_key = current.decode()
        if redis.expire(listen_key_name(listen_key), LISTEN_KEY_SECONDS):
            redis.expire(_user_key(user.id), LISTEN_KEY_SECONDS)
            return listen_key
    listen_key = secrets.token_hex(30)  # 60 characters, like Binance's
    pipe = redis.pipeline(transaction=True)
    pipe.set(listen_key_name(listen_key), user.id, ex=LISTEN_KEY_SECONDS)
    pipe.set(_user_key(user.id), listen_key, ex=LISTEN_KEY_SECONDS)
    pipe.execute()
    return listen_key


def listen_key_keepalive(*, user: User, listen_key: str) -> None:
    """Extend ``user``'s ``listen_key`` for 60 minutes, or ``-1125`` if it is not theirs or has expired."""
    _check_owner(user, listen_key)
    pipe = get_redis().pipeline(transaction=True)
    pipe.expire(listen_key_name(listen_key), LISTEN_KEY_SECONDS)
    pipe.expire(_user_key(user.id), LISTEN_KEY_SECONDS)
    pipe.execute()


def listen_key_close(*, user: User, listen_key: str) -> None:
    """End ``listen_key`` (streams opened with it stop receiving events)."""
    _check_owner(user, listen_key)
    get_redis().delete(listen_key_name(listen_key), _user_key(user.id))


def _check_owner(user: User, listen_key: str) -> None:
    if listen_key_user_id(listen_key) != user.id:
        raise BinanceError(-1125, "This listenKey does not exist.")
