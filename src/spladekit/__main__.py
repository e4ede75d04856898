"""``python -m spladekit``: the command line."""

import sys

from spladekit.cli import main

sys.exit(main())
