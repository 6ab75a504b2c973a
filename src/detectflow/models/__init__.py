"""detectflow.models."""
