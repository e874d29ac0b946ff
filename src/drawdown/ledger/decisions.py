"""Every write's decision, as the coalescer calls it: a pure function from what the group
loaded (`Loaded`, as the group's earlier decisions left it) to what to write (`Changes`).

Decisions never mutate `Loaded`. They raise `DrawdownError` (the write fails alone, nothing of
it applied) or `NeedCandidates` (load more candidates, decide again); anything else means the
caller did not load what the contract says (a LookupError or AssertionError that names it).
Each decision brings its account up to the book day first if a day boundary passed and the
group has not done so yet (`needs_bringing`), which needs that account's `Loaded.active`.

Each returns the `Changes` of that one decision; the caller applies them to `Loaded`
(`Loaded.apply`) before the next decision of the group and merges them (`Changes.merge`) for
one save. `Changes.lines` are in the order the services wrote them: a book's day-boundary
expiries first, then a grant's CREDITED lines, then each credit's lines together, credits in
the order the decision touched them.
"""

from datetime import datetime

from drawdown.ledger.applying import apply, capture, release
from drawdown.ledger.book import needs_bringing
from drawdown.ledger.changes import Changes, Loaded
from drawdown.ledger.draft import Draft
from drawdown.ledger.granting import grant
from drawdown.ledger.lifecycle import archive_account, update_account
from drawdown.ledger.voiding import void
from drawdown.ledger.wallet_writes import top_up, update_wallet

__all__ = [
    "apply",
    "archive_account",
    "bring_to_today",
    "capture",
    "grant",
    "needs_bringing",
    "release",
    "top_up",
    "update_account",
    "update_wallet",
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
