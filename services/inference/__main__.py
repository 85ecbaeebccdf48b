"""`python -m services.inference`: run the inference service, or `migrate` its schema."""

import sys

from services.inference.app import create_app
from shared.service import run_cli

sys.exit(run_cli("inference", create_app))
