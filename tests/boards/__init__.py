"""Board images for the Home Assistant tests (files put on virtual boards)."""
