"""Backend plugin (in progress)."""
