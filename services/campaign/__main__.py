"""`python -m services.campaign`: run the campaign service, or `migrate` its schema."""

import sys

from services.campaign.app import create_app
from shared.service import run_cli

sys.exit(run_cli("campaign", create_app))
