"""Held-out bits/char for a fixed CPU budget: which recipe, which tokenizer."""
