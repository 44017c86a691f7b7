"""Tips: one-off payments from fans (or guests) to creators."""
