"""Ids in Togai's shape: `<prefix>.` + 11 time-ordered + `.` + 5 random url-safe characters."""

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BASE = len(_ALPHABET)
# Every two-character numeral, so encoding takes half the steps: ids are made for every ledger
# line, entry and event, several for each account burned.
_PAIRS = [high + low for high in _ALPHABET for low in _ALPHABET]
_PAIR_BASE = _BASE * _BASE

CREDIT_PREFIX = "cred"
TRANSACTION_PREFIX = "ctxn"


def _encode(number: int, width: int) -> str:
    """`number` in base 62, `width` characters wide (its lowest ones if it is wider)."""
    chars = []
    for _ in range(width // 2):
        number, rest = divmod(number, _PAIR_BASE)
        chars.append(_PAIRS[rest])
    if width % 2:
        chars.append(_ALPHABET[number % _BASE])
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    """A new id such as `cred.1znqBOVcai0.0tBFz`; the middle part grows with time."""
    stamp = _encode(time.time_ns() // 1000, 11)
    tail = _encode(secrets.randbelow(_BASE**5), 5)  # one draw from the system's source, not five
    return f"{prefix}.{stamp}.{tail}"
