"""mkdocs hook: show the package's Sphinx-style cross-reference roles as code.

The docstrings write references as Sphinx roles (``:func:`~mlcsc.pursuit.omp```), which
mkdocstrings leaves as text; this hook turns each into inline code showing the name (the last
component when the target starts with ``~``, as Sphinx does).
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:func|class|meth|data|mod|attr|obj|exc):<code>(~?)([^<]+)</code>")


def _name(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    return f"<code>{target.rsplit('.', 1)[-1] if short else target}</code>"


def on_page_content(html: str, **kwargs) -> str:
    return _ROLE.sub(_name, html)
