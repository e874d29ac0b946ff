"""Per-account versions, and which accounts a save writes.

On PostgreSQL a load locks its accounts and reads their credits and applications in one
statement. Under READ COMMITTED that statement reads every table as of its start, but a row it
locks is returned as it stands once the lock is granted: if the statement waited for the lock
while another transaction changed the account's credits and committed, what it read of them
is stale, and money would be spent twice. So every save bumps `accounts.version` of each
account whose rows it writes; a load compares the version its lock returned with the version
its snapshot holds, and reads again on a difference (now holding the locks, a new statement
sees everything).

Only the accounts a save writes are bumped, not every account the transaction locked: a
snapshot can only be stale for an account whose rows another transaction changed, and a
transaction changes an account's rows only through a save, which bumps it. An account that was
merely locked keeps its row, so no dead row version is made for nothing.
"""

from drawdown.ledger.changes import Changes


def accounts_written(changes: Changes) -> set[int]:
    """Every account whose credits, ledger lines, applications or balance the save writes."""
    written = set(changes.accounts)
    written.update(credit.account_seq for credit in changes.new_credits)
    written.update(credit.account_seq for credit in changes.credits.values())
    written.update(account_seq for account_seq, _ in changes.applications)
    written.update(event.account_seq for event in changes.events)
    written.update(changes.applied_through)
    return written


def check_lines(changes: Changes) -> None:
    """Every ledger line must name a credit the changes grant or change (a line always moves a
    credit's amounts), so its credit's seq and account are known without another read."""
    named = {credit.id for credit in changes.new_credits} | set(changes.credits)
    for line in changes.lines:
        if line.credit_id not in named:
            raise ValueError(
                f"ledger line {line.id} names credit {line.credit_id}, which these changes "
                "neither grant nor change"
            )
    for credit_id, credit in changes.credits.items():
        if credit.seq <= 0 or credit.id != credit_id:
            raise ValueError(f"changed credit {credit_id} must be a stored credit under its id")
