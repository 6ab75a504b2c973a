"""The operator's RBAC: one list of rules, rendered as ClusterRole or Role manifests."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from detectflow.operator.crd import GROUP, PLURAL, dump_yaml

__all__ = [
    "DEFAULT_NAMESPACE",
    "DEFAULT_SERVICE_ACCOUNT",
    "RULES",
    "render_cluster_rbac",
    "render_namespaced_rbac",
    "write_all",
]

#: Namespace the generated files install the operator's ServiceAccount into.
DEFAULT_NAMESPACE = "detectflow-system"
#: The operator's ServiceAccount (and Role/ClusterRole) name.
DEFAULT_SERVICE_ACCOUNT = "detectflow-operator"

#: Every API call the operator makes, and nothing else (sorted; the integration tests run the
#: operator under exactly these rules).
RULES: list[dict[str, Any]] = [
    # kopf: list+watch the custom resources, patch annotations (handler progress) and its
    # finalizer (kopf timers need one), post Events.
    {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": ["list", "patch", "watch"]},
    {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    # Children: get first (an existing object without this pipeline's ownerReference is a
    # Conflict and is left alone), then server-side apply (patch, plus create when the object
    # does not exist yet); list by label (status, pruning) and delete (pruning) only for the
    # kinds that can stop being desired (a removed worker, password, PDB or NetworkPolicy).
    {"apiGroups": [""], "resources": ["serviceaccounts", "services"], "verbs": ["create", "get", "patch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["create", "delete", "get", "list", "patch"]},
    {
        "apiGroups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["ingresses", "networkpolicies"],
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
    # Exposure and scraping, when asked for: a Gateway API HTTPRoute and a Prometheus operator PodMonitor.
    {
        "apiGroups": ["gateway.networking.k8s.io"],
        "resources": ["httproutes"],
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
    {
        "apiGroups": ["monitoring.coreos.com"],
        "resources": ["podmonitors"],
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
    {
        "apiGroups": ["keda.sh"],
        "resources": ["scaledobjects", "triggerauthentications"],
        "verbs": ["create", "delete", "get", "list", "patch"],
    },
    # Secrets the pipeline references (Redis password, admin key, webhook secret), in the
    # pipeline's namespace: get by name only (no list, no watch), and their data is used only
    # when the Secret is labelled detectflow.io/secret: "true". With --namespace this is a Role
    # in the served namespace, never cluster-wide.
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
]

_LABELS = {
    "app.kubernetes.io/name": "detectflow",
    "app.kubernetes.io/component": "operator",
    "app.kubernetes.io/part-of": "detectflow",
}


def _service_account(namespace: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace, "labels": _LABELS},
    }


def _role_and_binding(
    kind: str, name: str, sa_namespace: str, namespace: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Role or ClusterRole with :data:`RULES` and its binding to the operator's ServiceAccount."""
    metadata = {"name": name, **({"namespace": namespace} if namespace else {}), "labels": _LABELS}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata, "rules": RULES}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": f"{kind}Binding",
        "metadata": dict(metadata),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": sa_namespace}],
    }
    return role, binding


def render_cluster_rbac(
    namespace: str = DEFAULT_NAMESPACE, name: str = DEFAULT_SERVICE_ACCOUNT
) -> list[dict[str, Any]]:
    """ServiceAccount, ClusterRole and ClusterRoleBinding for an operator watching all namespaces.

    Parameters
    ----------
    namespace
        Namespace of the operator's ServiceAccount.
    name
        Name of the ServiceAccount, ClusterRole and binding.

    Returns
    -------
    list of dict
        The three manifests.
    """
    return [_service_account(namespace, name), *_role_and_binding("ClusterRole", name, namespace, None)]


def render_namespaced_rbac(
    watch_namespace: str,
    namespace: str = DEFAULT_NAMESPACE,
    name: str = DEFAULT_SERVICE_ACCOUNT,
) -> list[dict[str, Any]]:
    """ServiceAccount, Role and RoleBinding for an operator run with ``--namespace``.

    Parameters
    ----------
    watch_namespace
        The namespace the operator serves (Role and RoleBinding live there).
    namespace
        Namespace of the operator's ServiceAccount.
    name
        Name of the ServiceAccount, Role and binding.

    Returns
    -------
    list of dict
        The three manifests.
    """
    return [_service_account(namespace, name), *_role_and_binding("Role", name, namespace, watch_namespace)]


def rendered_files() -> dict[str, str]:
    """File name -> YAML text of everything under ``deploy/rbac/``."""
    header = "# Generated by `python -m detectflow.operator.rbac deploy/rbac`; do not edit by hand.\n"
    return {
        "cluster.yaml": header + dump_yaml(*render_cluster_rbac()),
        "namespaced.yaml": header + dump_yaml(*render_namespaced_rbac(watch_namespace="detectflow")),
    }


def write_all(directory: Path) -> None:
    """Write :func:`rendered_files` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in rendered_files().items():
        (directory / name).write_text(text)


if __name__ == "__main__":
    write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "deploy/rbac"))
