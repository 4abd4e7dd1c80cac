"""Quoting and in-place editing: both readers get values back exactly; other bytes are kept."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dotenv import dotenv_values
from harbor_secrets_envfile import _format
from hypothesis import example, given
from hypothesis import strategies as st

# Characters that trip quoting, plus ordinary ones so values look like real strings.
_AWKWARD = "'\"$`\\{}#= \t!*?;|&<>()~%^.-_/+ aZ9é東🔑"
values = st.text(alphabet=st.sampled_from(_AWKWARD), max_size=24)


def _dotenv(text: str) -> dict[str, str | None]:
    return dict(dotenv_values(stream=io.StringIO(text)))


def _must_refuse(value: str) -> bool:
    """Independent statement of when no quoting satisfies both sh and python-dotenv."""
    needs_double = "'" in value or "\\\\" in value or value.endswith("\\")
    return "${" in value or (needs_double and ("$" in value or "`" in value))


@given(values)
@example("it's")
@example("trailing\\")
@example("a\\\\b")
@example("${HOME}")
@example("$'")
def test_quote_round_trips_through_dotenv_and_our_parser_or_refuses(value: str) -> None:
    if _must_refuse(value):
        with pytest.raises(_format.UnrepresentableValueError):
            _format.quote(value)
        return
    text = f"NAME={_format.quote(value)}\n"
    assert _dotenv(text) == {"NAME": value}
    assert _format.values(text, {"NAME"}) == {"NAME": value}


@pytest.mark.parametrize("char", ["\n", "\r", "\x00", "\x1b", "\x7f", "\x85"])
def test_control_characters_are_refused_without_echoing_the_value(char: str) -> None:
    secret = f"tok{char}en-canary"
    with pytest.raises(_format.UnrepresentableValueError) as caught:
        _format.quote(secret)
    assert "canary" not in str(caught.value)
    assert f"U+{ord(char):04X}" in str(caught.value)


def test_single_quotes_are_preferred_and_double_quotes_escape_only_what_they_must() -> None:
    assert _format.quote("abc.def-_") == "'abc.def-_'"
    assert _format.quote("$x `y`") == "'$x `y`'"
    assert _format.quote('it\'s "q" \\\\') == '"it\'s \\"q\\" \\\\\\\\"'


ORIGINAL = (
    b"# Managed partly by hand \xe2\x80\x94 keep this comment\n"
    b"\n"
    b"export DATABASE_URL='postgres://u@h/db'   # trailing comment\r\n"
    b'MULTI="first line\n'
    b"HARBOR_X_ACCESS_TOKEN=inside-a-multiline-value\n"
    b'last line"\n'
    b"HARBOR_X_ACCESS_TOKEN='old'  # ours, first copy\n"
    b"latin1=\xe9t\xe9\n"
    b"  indented = 'spaced'\n"
    b"export HARBOR_X_ACCESS_TOKEN=old2\n"
    b"not an assignment line\n"
    b"TAIL=no-newline"
)


def test_update_rewrites_only_our_assignments_in_place() -> None:
    text = _format.decode(ORIGINAL)
    updated = _format.update(
        text,
        {"HARBOR_X_ACCESS_TOKEN": "'new'", "HARBOR_X_EXPIRES_AT": "'2030-01-01T00:00:00Z'"},
    )
    expected = (
        ORIGINAL.replace(
            b"HARBOR_X_ACCESS_TOKEN='old'  # ours, first copy\n", b"HARBOR_X_ACCESS_TOKEN='new'\n"
        ).replace(b"export HARBOR_X_ACCESS_TOKEN=old2\n", b"export HARBOR_X_ACCESS_TOKEN='new'\n")
        + b"\nHARBOR_X_EXPIRES_AT='2030-01-01T00:00:00Z'\n"
    )
    assert _format.encode(updated) == expected
    assert _format.values(updated, {"HARBOR_X_ACCESS_TOKEN", "MULTI"}) == {
        "MULTI": "first line\nHARBOR_X_ACCESS_TOKEN=inside-a-multiline-value\nlast line",
        "HARBOR_X_ACCESS_TOKEN": "new",
    }


def test_parse_is_tolerant_of_hand_written_forms() -> None:
    text = (
        "export A='single # not comment'\n"
        'B="dq \\"esc\\" \\$x \\\\ \\n"\n'
        "C=unquoted value # comment\n"
        "D=\n"
        "E='unterminated\n"
        "F = spaced\n"
    )
    assert _format.values(text, set("ABCDEF")) == {
        "A": "single # not comment",
        "B": 'dq "esc" $x \\ \\n',
        "C": "unquoted value",
        "D": "",
        "E": None,
        "F": "spaced",
    }


_OTHER_LINES = [
    "# comment\n",
    "\n",
    "   \n",
    "OTHER=1\n",
    "export OTHER2='x y'\n",
    'DQ="a \\" b"\n',
    "HARBOR_Y_ACCESS_TOKEN='someone else'\n",
    "#HARBOR_K_ACCESS_TOKEN=commented out\n",
    "weird line without equals\n",
    "CRLF=1\r\n",
    "ünïcode=ok\n",
]


@given(st.lists(st.sampled_from(_OTHER_LINES), max_size=12), st.booleans(), values)
def test_update_never_touches_other_lines(lines: list[str], strip_eol: bool, token: str) -> None:
    original = "".join(lines)
    if strip_eol:
        original = original.rstrip("\n")
    try:
        quoted = _format.quote(token)
    except _format.UnrepresentableValueError:
        return
    new = {"HARBOR_K_ACCESS_TOKEN": quoted, "HARBOR_K_EXPIRES_AT": "'2030-01-01T00:00:00Z'"}
    updated = _format.update(original, new)
    ours = "".join(f"{name}={value}\n" for name, value in new.items())
    assert updated.endswith(ours)
    kept = updated[: -len(ours)]
    assert kept in (original, original + "\n")
    assert _format.values(updated, set(new)) == {
        "HARBOR_K_ACCESS_TOKEN": token,
        "HARBOR_K_EXPIRES_AT": "2030-01-01T00:00:00Z",
    }
    # Idempotent: a second update with the same values changes nothing.
    assert _format.update(updated, new) == updated


# -- the order of our lines does not depend on the order the writes came in -------------------


def _names_in(path: Path) -> list[str]:
    return [line.split("=", 1)[0] for line in path.read_text().splitlines()]


def test_new_tokens_land_in_one_order_whatever_order_the_writes_came_in(tmp_path: Path) -> None:
    """A run writes its tokens from a thread pool, so the order of first writes varies; two
    files written in opposite orders come out line for line the same, and the lines that
    are not ours stay where they were."""
    from datetime import UTC, datetime

    from harbor_secrets_envfile import EnvFileProvider

    from harbor_secrets.testing.contract import make_record_factory

    record = make_record_factory("sandbox", datetime(2030, 1, 1, tzinfo=UTC))
    keys = [
        "HARBOR_SANDBOX_TOWER_ACCESS",
        "HARBOR_PRODUCTION_SERVICE_PROVIDER",
        "HARBOR_SANDBOX_SERVICE_PROVIDER",
        "HARBOR_PRODUCTION_TOWER_ACCESS",
    ]
    orders = {"forward": keys, "backward": keys[::-1]}
    results = {}
    for label, order in orders.items():
        path = tmp_path / f"{label}.env"
        path.write_text("# mine\nFIRST=1\n")
        provider = EnvFileProvider(path)
        for index, key in enumerate(order):
            provider.write(key, record())
            if index == 1:  # someone adds a line of their own between two runs
                path.write_text(path.read_text() + "LATER=2\n")
        results[label] = _names_in(path)
    pairs = [
        f"HARBOR_{token}_{suffix}"
        for token in (
            "PRODUCTION_SERVICE_PROVIDER",
            "PRODUCTION_TOWER_ACCESS",
            "SANDBOX_SERVICE_PROVIDER",
            "SANDBOX_TOWER_ACCESS",
        )
        for suffix in ("ACCESS_TOKEN", "EXPIRES_AT")
    ]
    # theirs first and last, ours together and sorted in between
    assert results["forward"] == ["# mine", "FIRST", *pairs, "LATER"]
    assert results["backward"] == results["forward"]


def test_a_missing_expiry_goes_right_after_its_own_token() -> None:
    text = "HARBOR_A_ACCESS_TOKEN='a'\nHARBOR_B_ACCESS_TOKEN='b'\nHARBOR_B_EXPIRES_AT='x'\n"
    new = {"HARBOR_A_ACCESS_TOKEN": "'a2'", "HARBOR_A_EXPIRES_AT": "'y'"}
    updated = _format.update(text, new, peer_suffixes=("_ACCESS_TOKEN", "_EXPIRES_AT"))
    assert updated.splitlines() == [
        "HARBOR_A_ACCESS_TOKEN='a2'",
        "HARBOR_A_EXPIRES_AT='y'",
        "HARBOR_B_ACCESS_TOKEN='b'",
        "HARBOR_B_EXPIRES_AT='x'",
    ]
