"""The seeds' stack, for comparison: FastAPI + Celery + Redis serving the same face model as detectflow."""
