"""Every write's decision, as the coalescer calls it: a pure function from what the group
loaded (`Loaded`, as the group's earlier decisions left it) to what to write (`Changes`).

Decisions never mutate `Loaded` nor raise anything but `DrawdownError` (the write fails alone)
and `NeedCandidates` (load more, decide again). Each brings its account up to the book day
first if a day boundary passed and the group has not done so yet (`needs_bringing`), which
needs that account's `Loaded.active`.
"""

from datetime import datetime

from drawdown.ledger.applying import apply, capture, release
from drawdown.ledger.book import needs_bringing
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.draft import Draft
from drawdown.ledger.granting import grant
from drawdown.ledger.voiding import void

__all__ = [
    "apply",
    "bring_to_today",
    "capture",
    "grant",
    "needs_bringing",
    "release",
    "void",
]


def bring_to_today(
    loaded: Loaded, account_seq: int, now: datetime, *, recount: bool = False
) -> Changes:
    """Expire the account's credits past their last day and count its balance again from
    `loaded.active[account_seq]`, when a day boundary passed (always, with `recount`);
    empty changes when nothing is due."""
    draft = Draft(loaded, now)
    draft.book(account_seq, recount=recount)
    return draft.changes()
