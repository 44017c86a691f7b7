"""The double-entry ledger: the source of truth for every cent (see docs/ledger.md)."""
