"""The result cache's key: a tenant's identical request (input, task, model, options) within the cache TTL."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["cache_digest"]


def cache_digest(task: str, image_sha256: str, model_sha256: str, options: dict[str, Any] | None = None) -> str:
    """The hex SHA-256 naming one cacheable result: same input bytes, task, model file and options.

    The tenant is not in the digest but in the key around it (``KeyLayout.result_cache``), so a
    cached result never crosses tenants.
    """
    canonical = json.dumps(
        {"task": task, "input": image_sha256, "model": model_sha256, "options": options or {}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()
