"""`python -m bot` is the `tfbot` command."""
import sys

from bot.cli import main

sys.exit(main())
