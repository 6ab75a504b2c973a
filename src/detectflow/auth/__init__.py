"""API keys: tenants, scopes, rate limits and quotas."""

from detectflow.auth.records import ApiKeyCreate, ApiKeyCreated, ApiKeyPublic, ApiKeyRecord, Principal, Scope

__all__ = ["ApiKeyCreate", "ApiKeyCreated", "ApiKeyPublic", "ApiKeyRecord", "Principal", "Scope"]
