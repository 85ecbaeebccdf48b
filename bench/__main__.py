"""`python -m bench`: the gateway's Kafka request/reply benchmark."""

import sys

from bench.request_reply import main

sys.exit(main())
