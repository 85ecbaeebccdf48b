"""`python -m bench`: the request/reply, intent and inference benchmarks (see bench.run)."""

import sys

from bench.run import main

sys.exit(main())
