"""What a loaded vector is: plain frozen data, ready to run."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Step:
    index: int                      # 1-based position in the vector
    kind: str                       # send | urc | no_urc | packet | inject
    spec: Mapping[str, Any]
    line: int

    def describe(self) -> str:
        """Short label for reports: ``step 3 (send AT+QCOAPSEND=...)``."""
        if self.kind in ("packet", "inject"):
            fields = ", ".join(f"{k}={v}" for k, v in self.spec[self.kind].items()
                               if k not in ("within", "save"))
            target = f"{self.kind} {fields}"
        else:
            target = f"{self.kind} {self.spec[self.kind]}"
        return f"step {self.index} ({target})"


@dataclass(frozen=True)
class Vector:
    id: str                         # with the case id: ``bc28-2.6-send-method[get]``
    manual: str                     # bc28 | bg95
    section: str
    title: str
    models: tuple[str, ...]
    steps: tuple[Step, ...]
    server: Mapping[str, Any] | None
    source: Path
    line: int
    decision: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)   # case values

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def citation(self) -> str:
        return f"{self.manual.upper()} note §{self.section}"


@dataclass(frozen=True)
class VectorFile:
    path: Path
    manual: str | None
    vectors: tuple[Vector, ...] = ()
    error: "Exception | None" = None      # set when the file failed to load
