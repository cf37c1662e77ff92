"""``python -m asyncassets.cli``, as ``asyncassets``."""

import sys

from asyncassets.cli import main

sys.exit(main())
