"""Early-exit automatic modulation classification."""
