"""`python -m bot` is the `tfbot` command."""
import sys

from bot.cli import console

sys.exit(console())
