"""Implementations of the JobStore protocol: Redis (production) and memory (unit tests)."""
