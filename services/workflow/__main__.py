"""`python -m services.workflow`: run the workflow service, or `migrate` its schema."""

import sys

from services.workflow.app import create_app
from shared.service import run_cli

sys.exit(run_cli("workflow", create_app))
