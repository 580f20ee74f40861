"""`python -m textgen.cli`: the `textgen` command."""

import sys

from textgen.cli import main

sys.exit(main())
