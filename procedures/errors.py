"""Errors raised while reading and checking procedure definitions.

Every error of the project derives from :class:`TinhgonError`. A definition
that breaks the format raises :class:`DefinitionError`, which carries every
:class:`Problem` found in the file, each with its line and YAML path, so that a
reform officer can fix the whole file in one go.
"""

from __future__ import annotations

from dataclasses import dataclass


class TinhgonError(Exception):
    """Root of every error tinhgon raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a definition, where it is and what it is.

    ``path`` is written like ``steps[2].inputs[0]``; an empty path means the
    document as a whole. ``line`` is 1-based, 0 when unknown.
    """

    line: int
    path: str
    message: str

    def render(self, source: str) -> str:
        where = self.path or "(document)"
        return f"{source}:{self.line}: {where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "path": self.path, "message": self.message}


class DefinitionError(TinhgonError):
    """A definition was rejected; ``problems`` lists every reason found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line, p.path))
        super().__init__("\n".join(p.render(source) for p in self.problems))

    def __reduce__(self) -> tuple[type[DefinitionError], tuple[str, list[Problem]]]:
        # rebuilt from what __init__ takes (the service reads big definitions in another process)
        return (DefinitionError, (self.source, self.problems))


class ReadError(TinhgonError):
    """A file could not be read at all (missing, unreadable, a directory)."""

    def __init__(self, source: str, message: str) -> None:
        self.source = source
        self.message = message
        super().__init__(f"{source}: {message}")

    def __reduce__(self) -> tuple[type[ReadError], tuple[str, str]]:
        return (ReadError, (self.source, self.message))
