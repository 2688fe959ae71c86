"""Sparks: a local OpenAI-compatible gateway to ghosts and upstream backends."""

__version__ = "0.1.0"
