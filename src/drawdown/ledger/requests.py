"""What a caller asks a write to do, as the rules see it, and what makes two asks with one
idempotency key (or one invoice) the same ask."""

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from drawdown.ledger.allocation import LineItem
from drawdown.ledger.application import ApplicationMode
from drawdown.ledger.money import format_amount


@dataclass(frozen=True)
class GrantRequest:
    account_id: str
    purpose: str
    applicable_entity_ids: tuple[str, ...] | None
    effective_from: date
    effective_until: date | None
    credit_amount: Decimal
    priority: int
    grantor_id: str | None
    idempotency_key: str | None

    def fingerprint(self) -> str:
        """What makes two requests with one idempotency key the same request."""
        canonical = {
            "accountId": self.account_id,
            "purpose": self.purpose,
            "applicableEntityIds": sorted(self.applicable_entity_ids or []),
            "effectiveFrom": self.effective_from.isoformat(),
            "effectiveUntil": self.effective_until.isoformat() if self.effective_until else None,
            "creditAmount": format_amount(self.credit_amount),
            "priority": self.priority,
            "grantorId": self.grantor_id,
        }
        encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()


@dataclass(frozen=True)
class ApplicationRequest:
    invoice_id: str
    mode: ApplicationMode
    as_of: date | None
    line_items: tuple[LineItem, ...]
    use_wallet: bool = True  # the wallet pays what the credits leave (docs/wallet.md)

    def fingerprint(self) -> str:
        canonical: dict[str, object] = {
            "mode": self.mode.value,
            "asOf": self.as_of.isoformat() if self.as_of else None,
            "lineItems": [
                [item.entity_id, item.entity_type.value, format_amount(item.amount)]
                for item in self.line_items
            ],
        }
        if not self.use_wallet:  # only when asked: requests without it keep their fingerprints
            canonical["useWallet"] = False
        encoded = json.dumps(canonical, separators=(",", ":"))
        return hashlib.sha256(encoded.encode()).hexdigest()
