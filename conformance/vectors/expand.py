"""``{name}`` placeholders: reference-server address, case values, regex captures."""
from __future__ import annotations

import re
from collections.abc import Mapping

#: ``{name}``, or ``{name+N}`` / ``{name-N}`` for an integer value (``{mid+1}``: the next
#: message ID after a saved one); ``{{``/``}}`` are literal braces.
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][\w.]*)(?:([+-])(\d+))?\}")


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
        value = variables[name]
        if match.group(2):
            try:
                number = int(str(value))
            except ValueError:
                raise ValueError(f"{{{name}{match.group(2)}{match.group(3)}}}: {value!r} is "
                                 f"not an integer") from None
            value = number + int(match.group(3)) * (1 if match.group(2) == "+" else -1)
        return convert(str(value))
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
