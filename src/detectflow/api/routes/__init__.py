"""detectflow.api.routes."""
