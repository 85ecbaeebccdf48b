"""The recruiter's web app: pages served by the gateway, on the same HTTP API as everyone else."""
