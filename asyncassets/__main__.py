"""``python -m asyncassets``."""

import sys

from asyncassets.cli import main

sys.exit(main())
