"""Ids in Togai's shape: `<prefix>.` + 11 time-ordered + `.` + 5 random url-safe characters."""

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(_ALPHABET)

CREDIT_PREFIX = "cred"
TRANSACTION_PREFIX = "ctxn"


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rest = divmod(number, _BASE)
        chars.append(_ALPHABET[rest])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as `cred.1znqBOVcai0.0tBFz`; the middle part grows with time."""
    stamp = _encode(time.time_ns() // 1000, 11)
    tail = _encode(secrets.randbelow(_BASE**5), 5)  # one draw from the system's source, not five
    return f"{prefix}.{stamp}.{tail}"
