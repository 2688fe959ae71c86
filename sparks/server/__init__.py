"""The HTTP face: the aiohttp app, its middlewares, and one module per front."""

from sparks.server.app import create_app
from sparks.server.startup import run

__all__ = ["create_app", "run"]
