"""detectflow.cli."""
