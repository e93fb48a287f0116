"""Custom integrations of this repository (a regular package, found first)."""
