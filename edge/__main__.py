"""``python -m edge``: see edge/cli.py."""
import sys

from edge.cli import main

sys.exit(main())
