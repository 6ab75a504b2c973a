"""Benchmarks share docs/performance.md: each one replaces its own section and keeps the rest."""

from bench.report import replace_section


def test_replace_section_appends_then_replaces_only_its_own(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nHand-written intro.\n")
    replace_section(doc, "a", "A v1")
    replace_section(doc, "b", "B v1")
    replace_section(doc, "a", "A v2\nwith $1 and \\1 kept literally")
    text = doc.read_text()
    assert text.startswith("# Performance\n\nHand-written intro.\n")
    assert "A v1" not in text and "A v2\nwith $1 and \\1 kept literally" in text
    assert text.index("A v2") < text.index("B v1")
    assert text.count("BEGIN bench:a") == 1 and text.count("BEGIN bench:b") == 1
