"""The operator's RBAC rules and the generated deploy/rbac/ files."""

from __future__ import annotations

from pathlib import Path

from detectflow.operator.rbac import RULES, render_namespaced_rbac, rendered_files

ROOT = Path(__file__).resolve().parents[3]


def test_rbac_files_match_committed() -> None:
    for name, text in rendered_files().items():
        committed = (ROOT / "deploy" / "rbac" / name).read_text()
        assert committed == text, "regenerate: python -m detectflow.operator.rbac deploy/rbac"


def test_rbac_rules_are_explicit_and_sorted() -> None:
    for rule in RULES:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"]
        assert rule["verbs"] == sorted(rule["verbs"])
        assert rule["resources"] == sorted(rule["resources"])


def test_rbac_secrets_are_get_only() -> None:
    secrets = [r for r in RULES if "secrets" in r["resources"]]
    assert [r["verbs"] for r in secrets] == [["get"]]


def test_rbac_namespaced_variant_binds_in_the_watched_namespace() -> None:
    sa, role, binding = render_namespaced_rbac(watch_namespace="team-a", namespace="ops")
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "team-a"
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": "ops"}]
