"""The ``hpsearch`` command line: argparse, one module per command group."""

from search.cli.main import main

__all__ = ["main"]
