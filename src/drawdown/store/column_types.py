"""Column types that keep money exact and time in UTC on every engine."""

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric, String
from sqlalchemy.types import TypeDecorator, TypeEngine

from drawdown.ledger.money import format_amount


class Money(TypeDecorator[Decimal]):
    """One amount (18 digits before the point, 10 after): NUMERIC(28,10) on PostgreSQL; on
    SQLite, plain decimal text, so no float ever rounds it."""

    impl = Numeric(28, 10)
    cache_ok = True
    total_digits = 28

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(40))
        return dialect.type_descriptor(Numeric(self.total_digits, 10, asdecimal=True))

    def process_bind_param(self, value: Decimal | int | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, Decimal | int) or isinstance(value, bool):
            raise TypeError(f"money must be a Decimal or an int, never {type(value).__name__}")
        value = Decimal(value)
        if dialect.name == "sqlite":
            return format_amount(value)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return Decimal(value)


class MoneyTotal(Money):
    """A sum of many amounts (28 digits before the point, 10 after): NUMERIC(38,10) on
    PostgreSQL; the same text on SQLite (40 characters hold sign, 38 digits and the point)."""

    impl = Numeric(38, 10)
    cache_ok = True
    total_digits = 38


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        stored: datetime = value
        if stored.tzinfo is None:
            return stored.replace(tzinfo=UTC)
        return stored.astimezone(UTC)
