"""docs/performance.md is written by several benchmarks: each replaces only its own marked section."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["replace_section"]


def _markers(name: str) -> tuple[str, str]:
    return f"<!-- BEGIN bench:{name} -->", f"<!-- END bench:{name} (generated: do not edit) -->"


def replace_section(path: Path, name: str, text: str) -> None:
    """Put ``text`` between ``name``'s markers in the file at ``path``, appending the section if it has none.

    The rest of the file (other benchmarks' sections, hand-written text) is kept as it is.
    """
    begin, end = _markers(name)
    block = f"{begin}\n{text.rstrip()}\n{end}"
    old = path.read_text() if path.exists() else ""
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    if pattern.search(old):
        new = pattern.sub(lambda _: block, old, count=1)
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block
    path.write_text(new + ("\n" if not new.endswith("\n") else ""))
