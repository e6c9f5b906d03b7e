"""Transfer attacks: fake profiles and history edits crafted on surrogates (config.py)."""
