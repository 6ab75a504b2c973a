"""detectflow: computer-vision detection as asynchronous jobs, autoscaled on queue depth."""

__version__ = "0.1.0"
