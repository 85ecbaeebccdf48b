"""`python -m bench`: the gateway's request/reply and intent benchmarks (see bench.run)."""

import sys

from bench.run import main

sys.exit(main())
