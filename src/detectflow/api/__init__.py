"""detectflow.api."""
