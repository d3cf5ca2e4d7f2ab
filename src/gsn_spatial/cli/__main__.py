"""``python -m gsn_spatial.cli``: the ``gsn`` command."""

import sys

from gsn_spatial.cli import main

sys.exit(main())
