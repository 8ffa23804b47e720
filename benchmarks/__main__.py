"""`python -m benchmarks run [--quick] ...`: see `benchmarks/cli.py`."""

import sys

from .cli import main

sys.exit(main())
