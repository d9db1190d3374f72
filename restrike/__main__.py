"""``python -m restrike``: the same as the ``restrike`` command."""

import sys

from restrike.host.cli import main

sys.exit(main())
