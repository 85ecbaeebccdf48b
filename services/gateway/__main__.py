"""`python -m services.gateway`: serve the HTTP API, `migrate`, or manage `keys`."""

import sys

from services.gateway.cli import main

sys.exit(main())
