"""``{name}`` placeholders: reference-server address, case values, regex captures."""
from __future__ import annotations

import re
from typing import Mapping

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.]*)\}")


class UnknownVariable(KeyError):
    def __str__(self) -> str:
        return f"unknown variable {{{self.args[0]}}}"


def _substitute(text: str, variables: Mapping[str, object], convert) -> str:
    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return convert(token[0])
        name = match.group(1)
        if name not in variables:
            raise UnknownVariable(name)
        return convert(str(variables[name]))
    return PLACEHOLDER.sub(replace, text)


def expand(text: str, variables: Mapping[str, object]) -> str:
    """Fill ``{name}`` with its value; ``{{``/``}}`` stand for literal braces."""
    return _substitute(text, variables, lambda s: s)


def expand_regex(pattern: str, variables: Mapping[str, object]) -> str:
    """As ``expand`` but for a regex: values are escaped. Quantifiers like ``{2}``
    or ``{1,3}`` are not names and stay as they are; ``{{``/``}}`` give ``{``/``}``."""
    return _substitute(pattern, variables, lambda s: s if s in "{}" else re.escape(s))


def names_in(text: str) -> list[str]:
    return [m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1)]
