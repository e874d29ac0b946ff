"""The wallet's own writes (docs/wallet.md): top-ups, with their idempotency keys, and status or
`effectiveFrom` changes. What the wallet pays for is decided where the paying is: applications
(`applying.py`) and usage (`burning.py`)."""

from datetime import datetime
from decimal import Decimal

from drawdown.errors import Conflict, NotFound
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.draft import Draft
from drawdown.ledger.wallet import TopupKey, WalletRecord, WalletStatus, topup_fingerprint


def top_up(
    loaded: Loaded,
    org_seq: int,
    account_id: str,
    amount: Decimal,
    idempotency_key: str | None,
    now: datetime,
) -> tuple[WalletRecord, Changes]:
    """Add `amount` (> 0) to the account's wallet, made now if it has none. A key used before
    for the same account and amount answers the wallet as it stands and writes nothing."""
    draft = Draft(loaded, now)
    account_seq = draft.account_seq(org_seq, account_id)
    fingerprint = topup_fingerprint(account_id, amount)
    if idempotency_key is not None:
        earlier = loaded.topup_keys.get((org_seq, idempotency_key))
        if earlier is not None:
            if earlier.request_hash != fingerprint:
                raise Conflict(
                    f"Idempotency-Key '{idempotency_key}' was already used for a different "
                    "top-up; use a new key for a new top-up"
                )
            return loaded.wallets[earlier.account_seq], draft.changes()
    wallet = draft.open_wallet(account_seq)
    entry = wallet.top_up(amount)
    if idempotency_key is not None:
        draft.topup_keys.append(
            TopupKey(org_seq, idempotency_key, account_seq, fingerprint, entry.id, now)
        )
    return wallet.wallet, draft.changes()


def update_wallet(
    loaded: Loaded,
    org_seq: int,
    account_id: str,
    status: WalletStatus | None,
    effective_from: datetime | None,
    now: datetime,
) -> tuple[WalletRecord, Changes]:
    """Change what is given; nothing given answers the wallet unchanged. An INACTIVE wallet
    keeps what it holds: capture and release still settle it."""
    draft = Draft(loaded, now)
    account_seq = draft.account_seq(org_seq, account_id)
    wallet = draft.wallet(account_seq)
    if wallet is None:
        raise NotFound(no_wallet(account_id))
    if status is not None:
        wallet.set_status(status)
    if effective_from is not None:
        wallet.set_effective_from(effective_from)
    return wallet.wallet, draft.changes()


def no_wallet(account_id: str) -> str:
    return f"account '{account_id}' has no wallet; a top-up creates it"
