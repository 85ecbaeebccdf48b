"""`python -m services.intent`: run the intent service, or `migrate` its schema."""

import sys

from services.intent.app import create_app
from shared.service import run_cli

sys.exit(run_cli("intent", create_app))
