"""MiniTwit: a small Twitter-like social network with a simulator API, on PostgreSQL."""

__version__ = "1.0.0"
