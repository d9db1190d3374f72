import sys

from restrike.host.cli import main

sys.exit(main())
