"""The `sparks` command line: click groups that gather arguments and call into the package."""

from sparks.cli.main import main

__all__ = ["main"]
