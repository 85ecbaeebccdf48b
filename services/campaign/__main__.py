"""`python -m services.campaign`: run the campaign service, `migrate` its schema, or import
candidates and jobs from CSV files (`import-candidates FILE`, `import-jobs FILE`)."""

import sys

from services.campaign.app import create_app
from services.campaign.importing import (
    add_file_argument,
    import_candidates_command,
    import_jobs_command,
)
from shared.service import Subcommand, run_cli

sys.exit(
    run_cli(
        "campaign",
        create_app,
        extra={
            "import-candidates": Subcommand(
                import_candidates_command, add_file_argument, "import or update candidates"
            ),
            "import-jobs": Subcommand(import_jobs_command, add_file_argument, "import jobs"),
        },
    )
)
