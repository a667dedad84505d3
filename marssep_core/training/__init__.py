"""The one training loop every trainer runs through (``loop.train_loop`` and its ``Task`` protocol)
and its batch prefetcher. Imports nothing of the project but the general helpers, so any
subpackage may train with it without pulling in another's code."""
