"""`python -m diffdis.cli`: the same as the `diffdis` command."""

import sys

from . import main

sys.exit(main())
