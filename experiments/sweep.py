"""Command line of the sweep runner (``runs.sweep``): ``python -m experiments.sweep EXPERIMENT --grid ...``."""

import sys

from runs.sweep import cli

if __name__ == "__main__":
    sys.exit(cli())
