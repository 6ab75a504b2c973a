"""detectflow.jobs."""
