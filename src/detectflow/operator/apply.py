"""The only module talking to the API server: server-side apply, prune, observe."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import kubernetes

from detectflow.operator.conditions import (
    APPLY_FAILED,
    FORBIDDEN,
    SECRET_NOT_FOUND,
    Observation,
    Problem,
)
from detectflow.operator.crd import DetectionPipeline
from detectflow.operator.render import FIELD_MANAGER, PRUNABLE_KINDS, child_name, child_selector

__all__ = [
    "ApiError",
    "ApplyResult",
    "Client",
    "apply",
    "apply_all",
    "make_client",
    "observe",
    "read_secret_value",
]

#: Timeout of one API request (seconds).
DEFAULT_REQUEST_TIMEOUT_SECONDS = 15.0

_KEDA_GROUP_VERSION = "keda.sh/v1alpha1"
_PLURALS = {
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Deployment": "deployments",
    "TriggerAuthentication": "triggerauthentications",
    "ScaledObject": "scaledobjects",
    "Secret": "secrets",
}


class ApiError(Exception):
    """A non-2xx answer of the API server."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


def _prefix(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


def _path(api_version: str, kind: str, namespace: str, name: str | None = None) -> str:
    path = f"{_prefix(api_version)}/namespaces/{quote(namespace)}/{_PLURALS[kind]}"
    return f"{path}/{quote(name)}" if name else path


class Client:
    """A thin JSON client over the kubernetes package's configured ApiClient."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """Send one request; return the decoded JSON body.

        Raises
        ------
        ApiError
            On any non-2xx status.
        """
        url_path = f"{path}?{urlencode(query)}" if query else path
        _, url, headers, _, _ = self.api_client.param_serialize(
            method=method,
            resource_path=url_path,
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(
            method, url, header_params=headers, body=body, _request_timeout=DEFAULT_REQUEST_TIMEOUT_SECONDS
        )
        response.read()
        try:
            data = json.loads(response.data) if response.data else {}
        except ValueError:  # e.g. "404 page not found" for an API group nobody serves
            data = {"message": response.data.decode("utf-8", "replace").strip()}
        if not 200 <= response.status < 300:
            raise ApiError(response.status, data.get("reason", "Unknown"), data.get("message", str(data)))
        return data

    def is_served(self, api_version: str) -> bool:
        """Whether the API server serves ``api_version`` (discovery; needs no RBAC rule)."""
        try:
            self.request("GET", _prefix(api_version))
        except ApiError as exc:
            if exc.status == 404:
                return False
            raise
        return True


def make_client() -> Client:
    """A client from the in-cluster service account, else from the kubeconfig (KUBECONFIG)."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return Client(kubernetes.client.ApiClient())


def apply(client: Client, manifest: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
    """Server-side apply one manifest under the ``detectflow-operator`` field manager.

    Parameters
    ----------
    client
        API client.
    manifest
        The desired object (with metadata.namespace).
    dry_run
        Validate and default on the server without persisting.

    Returns
    -------
    dict
        The object as stored (or as it would be).

    Raises
    ------
    ApiError
        When the server refuses it.
    """
    meta = manifest["metadata"]
    query: dict[str, Any] = {"fieldManager": FIELD_MANAGER, "force": "true"}
    if dry_run:
        query["dryRun"] = "All"
    path = _path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"])
    return client.request("PATCH", path, query, manifest, "application/apply-patch+yaml")


def _list(client: Client, api_version: str, kind: str, namespace: str, selector: str) -> list[dict[str, Any]]:
    items = client.request("GET", _path(api_version, kind, namespace), {"labelSelector": selector})["items"]
    return sorted(items, key=lambda o: o["metadata"]["name"])


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


@dataclass
class ApplyResult:
    """Outcome of :func:`apply_all`."""

    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    keda_installed: bool = True


def _problem(exc: ApiError, what: str) -> Problem:
    reason = FORBIDDEN if exc.status == 403 else APPLY_FAILED
    return Problem(reason, f"{what}: {exc.message}")


def apply_all(client: Client, pipeline: DetectionPipeline, manifests: list[dict[str, Any]]) -> ApplyResult:
    """Apply every desired child, then delete this pipeline's children that are no longer desired.

    KEDA kinds are skipped (and reported) when KEDA's API is not served. Refusals become
    problems in the result rather than exceptions, so one bad child does not hide the others.

    Parameters
    ----------
    client
        API client.
    pipeline
        The parsed pipeline (namespace, name and uid select what to prune).
    manifests
        Output of :func:`detectflow.operator.render.render_all`.

    Returns
    -------
    ApplyResult
        What was applied and pruned, and the problems met.
    """
    result = ApplyResult(keda_installed=client.is_served(_KEDA_GROUP_VERSION))
    desired = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    for manifest in manifests:
        what = f"{manifest['kind']} {manifest['metadata']['name']}"
        if manifest["apiVersion"] == _KEDA_GROUP_VERSION and not result.keda_installed:
            continue
        try:
            apply(client, manifest)
            result.applied.append(what)
        except ApiError as exc:
            result.problems.append(_problem(exc, f"applying {what}"))
    if result.problems:
        return result  # do not prune on a partial apply
    for api_version, kind in PRUNABLE_KINDS:
        if api_version == _KEDA_GROUP_VERSION and not result.keda_installed:
            continue
        try:
            for obj in _list(client, api_version, kind, pipeline.namespace, child_selector(pipeline.name)):
                name = obj["metadata"]["name"]
                if (kind, name) not in desired and _owned_by(obj, pipeline.uid):
                    client.request(
                        "DELETE",
                        _path(api_version, kind, pipeline.namespace, name),
                        body={"propagationPolicy": "Background"},
                    )
                    result.pruned.append(f"{kind} {name}")
        except ApiError as exc:
            if exc.status != 404:
                result.problems.append(_problem(exc, f"pruning {kind}"))
    return result


def read_secret_value(client: Client, namespace: str, name: str, key: str) -> str | None:
    """One decoded value of a Secret, or None when the Secret or key is missing.

    Raises
    ------
    ApiError
        On errors other than 404.
    """
    try:
        secret = client.request("GET", _path("v1", "Secret", namespace, name))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value is not None else None


def observe(client: Client, pipeline: DetectionPipeline, result: ApplyResult) -> tuple[Observation, str | None]:
    """Read the live Deployments and ScaledObjects and the Redis password.

    Parameters
    ----------
    client
        API client.
    pipeline
        The parsed pipeline.
    result
        The apply outcome (its problems carry over).

    Returns
    -------
    tuple
        The observation, and the Redis password (None without one or when unreadable).
    """
    obs = Observation(keda_installed=result.keda_installed, problems=list(result.problems))
    selector = child_selector(pipeline.name)
    try:
        deployments = {
            d["metadata"]["name"]: d for d in _list(client, "apps/v1", "Deployment", pipeline.namespace, selector)
        }
        scaled = (
            {s["metadata"]["name"]: s for s in _list(client, _KEDA_GROUP_VERSION, "ScaledObject", pipeline.namespace, selector)}
            if result.keda_installed
            else {}
        )
    except ApiError as exc:
        obs.problems.append(_problem(exc, "reading children"))
        deployments, scaled = {}, {}
    obs.api = deployments.get(child_name(pipeline.name, "api"))
    for worker in pipeline.spec.workers:
        obs.workers[worker.name] = deployments.get(child_name(pipeline.name, worker.name))
        obs.scaled_objects[worker.name] = scaled.get(child_name(pipeline.name, worker.name))
    password = None
    ref = pipeline.spec.redis.password_secret_ref
    if ref is not None:
        try:
            password = read_secret_value(client, pipeline.namespace, ref.name, ref.key)
            if password is None:
                obs.problems.append(
                    Problem(SECRET_NOT_FOUND, f"Secret {ref.name} with key {ref.key} not found in {pipeline.namespace}")
                )
        except ApiError as exc:
            obs.problems.append(_problem(exc, f"reading Secret {ref.name}"))
    return obs, password
