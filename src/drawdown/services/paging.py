"""Opaque page tokens: base64 of the last position seen, so pages never repeat or skip a row
that existed when paging began."""

import base64
import binascii

from drawdown.errors import BadRequest

MAX_POSITION = 2**63  # positions are BIGINT sequence numbers


def encode_token(kind: str, after_seq: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{after_seq}".encode()).decode()


def decode_token(kind: str, token: str | None) -> int:
    """The position after which the next page starts; 0 for the first page."""
    if not token:
        return 0
    try:
        found, _, position = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if found == kind and position.isascii() and position.isdigit():
            after = int(position)
            if after < MAX_POSITION:
                return after
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadRequest("nextToken is not a token this service issued; pass it back unchanged")
