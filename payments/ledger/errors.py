"""The ledger's own refusals (on top of ``payments.errors``)."""

from __future__ import annotations

from payments.errors import Conflict, InsufficientBalance, InvalidRequest


class InvalidPosting(InvalidRequest):
    """A journal the ledger refuses before writing anything (a bug in the caller)."""

    code = "invalid_posting"


class JournalKeyReused(Conflict):
    code = "journal_key_reused"


def insufficient() -> InsufficientBalance:
    """The database's non-negative CHECK refused a running account's new balance."""
    return InsufficientBalance(
        "The posting would take a non-negative account below zero; roll back.")


def already_reversed() -> Conflict:
    """The unique ``reverses_id`` index refused a second reversal of one journal."""
    return Conflict("That journal is already reversed.", code="journal_already_reversed")
