"""The output alphabet of the CTC model: blank at index 0, then the characters."""
from __future__ import annotations

import string
from dataclasses import dataclass

# printable ASCII without the tab/newline/etc. whitespace: 95 symbols, space included
PRINTABLE_ASCII = "".join(c for c in string.printable if c == " " or not c.isspace())


@dataclass(frozen=True)
class Alphabet:
    """Characters in output order; id 0 is the CTC blank, character ``chars[i]`` is id ``i + 1``."""

    chars: str = PRINTABLE_ASCII
    blank: int = 0

    def __post_init__(self):
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("Alphabet: characters must be unique")
        if self.blank != 0:
            raise ValueError("Alphabet: the blank must be id 0")

    @property
    def size(self) -> int:
        """Number of model outputs (characters + blank)."""
        return len(self.chars) + 1

    def covers(self, text: str) -> bool:
        return all(c in self._index for c in text)

    @property
    def _index(self) -> dict:
        idx = self.__dict__.get("_idx")
        if idx is None:
            idx = {c: i + 1 for i, c in enumerate(self.chars)}
            object.__setattr__(self, "_idx", idx)
        return idx

    def encode(self, text: str) -> list[int]:
        """Ids of ``text``; raises ValueError naming a character the alphabet lacks."""
        try:
            return [self._index[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the alphabet") from None

    @property
    def _symbols(self) -> tuple:
        # id -> string, "" for the blank: decode is one C-level join, it runs on every result
        table = self.__dict__.get("_sym")
        if table is None:
            table = ("",) + tuple(self.chars)
            object.__setattr__(self, "_sym", table)
        return table

    def decode(self, ids) -> str:
        """Characters of ``ids`` (blanks skipped; no CTC collapsing here)."""
        return "".join(map(self._symbols.__getitem__, ids))
