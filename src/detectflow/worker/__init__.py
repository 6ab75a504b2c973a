"""detectflow.worker."""
