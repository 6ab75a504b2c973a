"""detectflow.operator."""
