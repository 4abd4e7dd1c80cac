"""Reading and editing env-file text without disturbing anything we do not own.

The file is treated as text decoded with ``surrogateescape``, so every byte we do not
rewrite (other people's lines, comments, odd encodings, CRLF endings) is written back
exactly. Only assignments to our variable names are replaced, in place.

Quoting has to satisfy two readers that disagree: POSIX sh (``set -a; . file``) and
python-dotenv. Single quotes are literal to sh, and python-dotenv agrees as long as the
value holds no ``'``, no ``\\\\`` and no trailing ``\\``. Otherwise double quotes with ``\\``
and ``"`` escaped work for both, provided the value holds no ``$`` or backtick (sh would
expand them and python-dotenv has no escape for them). Anything neither form carries
exactly — and ``${`` (python-dotenv interpolates it even in single quotes), newlines and
other control characters — is refused rather than written wrong.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

ENCODING = "utf-8"
ERRORS = "surrogateescape"

# One assignment, including a quoted value that spans lines; the rest of its last line
# (a comment, say) belongs to it. finditer resumes after each match, so lines inside a
# multi-line value are never mistaken for assignments.
_ASSIGNMENT = re.compile(
    r"""^(?P<lead>[ \t]*(?:export[ \t]+)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*)
        (?P<value>'[^']*'|"(?:\\.|[^"\\])*"|[^\n]*)
        [^\n]*(?:\n|\Z)""",
    re.MULTILINE | re.DOTALL | re.VERBOSE,
)
_INLINE_COMMENT = re.compile(r"\s+#.*")
_SH_DOUBLE_QUOTE_ESCAPE = re.compile(r"\\([$`\"\\\n])")


class UnrepresentableValueError(ValueError):
    """The value cannot be written so that every reader gets it back exactly.

    The message says why without quoting the value (it is a secret).
    """


@dataclass(frozen=True)
class Assignment:
    """``NAME=value`` found in the file; ``value`` is ``None`` when it cannot be parsed."""

    name: str
    value: str | None
    start: int
    end: int
    lead: str


def decode(data: bytes) -> str:
    return data.decode(ENCODING, ERRORS)


def encode(text: str) -> bytes:
    return text.encode(ENCODING, ERRORS)


def parse(text: str, names: set[str] | None = None) -> list[Assignment]:
    """Assignments in file order, only to ``names`` if given (the last one wins for readers).

    The whole text is always scanned, so a line inside someone else's multi-line value is
    never mistaken for ours; only matches we care about are decoded.
    """
    if names is not None and not any(name in text for name in names):
        return []  # the common append case, without a scan
    return [
        Assignment(
            name=match["name"],
            value=_unquote(match["value"]),
            start=match.start(),
            end=match.end(),
            lead=match["lead"],
        )
        for match in _ASSIGNMENT.finditer(text)
        if names is None or match["name"] in names
    ]


def effective(assignments: list[Assignment]) -> dict[str, str | None]:
    """Each name's value as sh and python-dotenv see it: the last assignment wins."""
    return {assignment.name: assignment.value for assignment in assignments}


def values(text: str, names: set[str]) -> dict[str, str | None]:
    """The effective value of each of ``names`` present in ``text``."""
    return effective(parse(text, names))


def _unquote(raw: str) -> str | None:
    """Sh's reading of one value (python-dotenv's for unquoted ones); None if malformed."""
    if raw.startswith("'"):
        return raw[1:-1] if len(raw) >= 2 and raw.endswith("'") else None
    if raw.startswith('"'):
        if len(raw) < 2 or not raw.endswith('"'):
            return None
        return _SH_DOUBLE_QUOTE_ESCAPE.sub(lambda m: "" if m[1] == "\n" else m[1], raw[1:-1])
    return _INLINE_COMMENT.sub("", raw).strip()


def quote(value: str) -> str:
    """The value as sh and python-dotenv both read back exactly, or raise."""
    _check_characters(value)
    if "${" in value:
        raise UnrepresentableValueError(
            "the value contains '${', which python-dotenv expands even inside quotes"
        )
    if "'" not in value and "\\\\" not in value and not value.endswith("\\"):
        return f"'{value}'"
    if "$" not in value and "`" not in value:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise UnrepresentableValueError(
        "the value mixes a single quote or backslash with '$' or '`'; no quoting reads "
        "back identically in both sh and python-dotenv"
    )


def _check_characters(value: str) -> None:
    for char in value:
        if char != "\t" and unicodedata.category(char) in ("Cc", "Cs"):
            raise UnrepresentableValueError(
                f"the value contains the control or surrogate character U+{ord(char):04X}; "
                "env files cannot carry it safely"
            )


def update(
    text: str,
    new_values: dict[str, str],
    found: list[Assignment] | None = None,
    *,
    peer_suffixes: tuple[str, ...] = (),
) -> str:
    """``text`` with each of ``new_values`` set (already quoted), everything else kept.

    Existing assignments are rewritten in place (every occurrence, so no stale copy of a
    token is left behind). New ones go, in the order given, where :func:`_insertion_point`
    says: with ``peer_suffixes`` (the suffixes of the variables this store writes) that
    keeps our variables together and sorted, so the file does not reorder with the order
    in which a run's parallel writes happen to land; without, at the end. ``found`` is
    ``parse(text, set(new_values))`` when the caller already has it.
    """
    if found is None:
        found = parse(text, set(new_values))
    parts: list[str] = []
    cursor = 0
    present: set[str] = set()
    for assignment in found:
        parts.append(text[cursor : assignment.start])
        parts.append(f"{assignment.lead}{new_values[assignment.name]}\n")
        cursor = assignment.end
        present.add(assignment.name)
    parts.append(text[cursor:])
    result = "".join(parts)
    missing = [name for name in new_values if name not in present]
    if not missing:
        return result
    if result and not result.endswith("\n"):
        result += "\n"
    block = "".join(f"{name}={new_values[name]}\n" for name in missing)
    at = _insertion_point(result, missing[0], peer_suffixes)
    return result[:at] + block + result[at:]


def _group(name: str, suffixes: tuple[str, ...]) -> str | None:
    """The token a variable of ours belongs to (its prefix), or None if it is not ours."""
    for suffix in suffixes:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _insertion_point(text: str, name: str, suffixes: tuple[str, ...]) -> int:
    """Where a new variable of ours goes: after the other variable of its own token; else
    before the first token whose name sorts after its own; else after our last variable;
    else at the end. Lines that are not ours are never moved."""
    group = _group(name, suffixes)
    if group is None:
        return len(text)
    own_end: int | None = None
    last_end: int | None = None
    for assignment in parse(text):
        other = _group(assignment.name, suffixes)
        if other is None:
            continue
        if other == group:
            own_end = assignment.end
        elif other > group and own_end is None:
            return assignment.start
        last_end = assignment.end
    for end in (own_end, last_end):
        if end is not None:
            return end
    return len(text)
