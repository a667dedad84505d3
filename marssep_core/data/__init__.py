"""Corpus building, import, catalog, cleaning, splits, test pairs and validation."""
