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
    CONFLICT,
    FORBIDDEN,
    SECRET_NOT_FOUND,
    SECRET_NOT_LABELLED,
    Observation,
    Problem,
)
from detectflow.operator.crd import DetectionPipeline
from detectflow.operator.render import (
    FIELD_MANAGER,
    PRUNABLE_KINDS,
    SECRET_LABEL,
    child_name,
    child_selector,
    referenced_secrets,
)

__all__ = [
    "ApiError",
    "ApplyResult",
    "Client",
    "apply",
    "apply_all",
    "check_secrets",
    "make_client",
    "observe",
    "SecretCheck",
    "conflict",
    "secret_labelled",
]

#: The API group and version of KEDA's kinds.
KEDA_GROUP_VERSION = "keda.sh/v1alpha1"
#: Timeout of one API request (seconds).
DEFAULT_REQUEST_TIMEOUT_SECONDS = 15.0

_PLURALS = {
    "ServiceAccount": "serviceaccounts",
    "Service": "services",
    "Deployment": "deployments",
    "TriggerAuthentication": "triggerauthentications",
    "ScaledObject": "scaledobjects",
    "Secret": "secrets",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "Ingress": "ingresses",
    "HTTPRoute": "httproutes",
    "PodMonitor": "podmonitors",
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


def _get(client: Client, manifest: dict[str, Any]) -> dict[str, Any] | None:
    meta = manifest["metadata"]
    try:
        return client.request("GET", _path(manifest["apiVersion"], manifest["kind"], meta["namespace"], meta["name"]))
    except ApiError as exc:
        if exc.status == 404:
            return None
        raise


def conflict(live: dict[str, Any] | None, uid: str) -> bool:
    """Whether a live object stands where a child should be without being this pipeline's (by owner uid).

    Parameters
    ----------
    live
        The object read from the API server, or None when there is none.
    uid
        The pipeline's uid.

    Returns
    -------
    bool
        True when applying would take over an object someone else made.
    """
    return live is not None and not _owned_by(live, uid)


def apply_all(client: Client, pipeline: DetectionPipeline, manifests: list[dict[str, Any]]) -> ApplyResult:
    """Apply every desired child, then delete this pipeline's children that are no longer desired.

    A child is read first: one that exists without this pipeline's ownerReference (uid) is left
    untouched and reported as a ``Conflict`` (server-side apply with force would take it over).
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
    result = ApplyResult(keda_installed=client.is_served(KEDA_GROUP_VERSION))
    desired = {(m["kind"], m["metadata"]["name"]) for m in manifests}
    for manifest in manifests:
        what = f"{manifest['kind']} {manifest['metadata']['name']}"
        if manifest["apiVersion"] == KEDA_GROUP_VERSION and not result.keda_installed:
            continue
        try:
            if conflict(_get(client, manifest), pipeline.uid):
                result.problems.append(
                    Problem(CONFLICT, f"{what} exists and is not owned by this pipeline: left untouched")
                )
                continue
            apply(client, manifest)
            result.applied.append(what)
        except ApiError as exc:
            result.problems.append(_problem(exc, f"applying {what}"))
    if result.problems:
        return result  # do not prune on a partial apply
    for api_version, kind in PRUNABLE_KINDS:
        if api_version == KEDA_GROUP_VERSION and not result.keda_installed:
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


@dataclass
class SecretCheck:
    """Outcome of :func:`check_secrets`."""

    problems: list[Problem] = field(default_factory=list)
    #: The Redis password (None without one, or when its Secret is missing or unlabelled).
    redis_password: str | None = None
    #: True when a referenced Secret exists without the label: nothing is applied.
    blocked: bool = False


def secret_labelled(secret: dict[str, Any]) -> bool:
    """Whether a Secret carries ``detectflow.io/secret: "true"`` (opted in to use by pipelines)."""
    return ((secret.get("metadata") or {}).get("labels") or {}).get(SECRET_LABEL) == "true"


def check_secrets(client: Client, pipeline: DetectionPipeline) -> SecretCheck:
    """Get each Secret the pipeline references, in its own namespace; keep only labelled ones.

    A referenced Secret without the ``detectflow.io/secret: "true"`` label is not used: its
    data is dropped, the pipeline gets ``SecretNotLabelled`` and no child is applied (so the
    operator cannot be used to mount a Secret its owner did not offer). A missing one is
    ``SecretNotFound`` (the pods wait for it).

    Parameters
    ----------
    client
        API client.
    pipeline
        The parsed pipeline.

    Returns
    -------
    SecretCheck
        Problems, the Redis password and whether applying is blocked.
    """
    out = SecretCheck()
    redis_ref = pipeline.spec.redis.password_secret_ref
    for field_path, ref in referenced_secrets(pipeline):
        try:
            secret = client.request("GET", _path("v1", "Secret", pipeline.namespace, ref.name))
        except ApiError as exc:
            if exc.status == 404:
                out.problems.append(
                    Problem(SECRET_NOT_FOUND, f"Secret {ref.name} ({field_path}) not found in {pipeline.namespace}")
                )
            else:
                out.problems.append(_problem(exc, f"reading Secret {ref.name}"))
            continue
        if not secret_labelled(secret):
            out.blocked = True
            out.problems.append(
                Problem(
                    SECRET_NOT_LABELLED,
                    f'Secret {ref.name} ({field_path}) lacks the label {SECRET_LABEL}: "true"; nothing applied',
                )
            )
            continue
        value = (secret.get("data") or {}).get(ref.key)
        if value is None:
            out.problems.append(
                Problem(SECRET_NOT_FOUND, f"Secret {ref.name} with key {ref.key} not found in {pipeline.namespace}")
            )
        elif ref is redis_ref:
            out.redis_password = base64.b64decode(value).decode()
    return out


def observe(client: Client, pipeline: DetectionPipeline, result: ApplyResult) -> Observation:
    """Read the live Deployments and ScaledObjects.

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
    Observation
        The observation (the apply problems included).
    """
    obs = Observation(keda_installed=result.keda_installed, problems=list(result.problems))
    selector = child_selector(pipeline.name)
    try:
        deployments = {
            d["metadata"]["name"]: d for d in _list(client, "apps/v1", "Deployment", pipeline.namespace, selector)
        }
        scaled = (
            {s["metadata"]["name"]: s for s in _list(client, KEDA_GROUP_VERSION, "ScaledObject", pipeline.namespace, selector)}
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
    return obs
