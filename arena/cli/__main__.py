"""`python -m arena.cli`, as before the CLI became a package: the same command line as `arena`."""

import sys

from arena.cli import main

sys.exit(main())
