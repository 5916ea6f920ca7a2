"""The value syntax of scenario files: integers (decimal, 0x, with _), named constants, + and -."""

from __future__ import annotations

import re

_TERM = re.compile(r"\s*([+-]?)\s*(0x[0-9a-fA-F_]+|\d[\d_]*|[A-Za-z_][A-Za-z_0-9]*)\s*")


def read_number(text: str, consts: dict) -> int:
    """`RAM + 1`, `0x200`, `PA_PAGES - 1`: raises ValueError naming what it cannot read."""
    pos, total = 0, 0
    if not text:
        raise ValueError("empty value")
    while pos < len(text):
        m = _TERM.match(text, pos)
        if not m or (pos and not m.group(1)):
            raise ValueError(f"cannot read {text!r}")
        token = m.group(2)
        if token[0].isdigit():
            n = int(token.replace("_", ""), 0)
        elif token in consts:
            n = consts[token]
        else:
            raise ValueError(f"unknown name {token!r} in {text!r}")
        total += -n if m.group(1) == "-" else n
        pos = m.end()
    return total
