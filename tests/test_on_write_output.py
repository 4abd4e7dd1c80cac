"""What an ``on_write`` command prints: no piece of a token survives any cut, and a command
that prints without end is stopped long before it fills ``$TMPDIR``.

A failure message shows the end of the command's output. Scrubbing matches whole secrets
only, so a token cut in two where the output is cut (the start of the part read, or the
end when the command is killed mid-write) used to be printed almost whole.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import CLIENT_ID, Result
from harbor_secrets import secrets
from harbor_secrets.hooks import MAX_OUTPUT, Change, HookError, OnWrite, run_hook
from harbor_secrets.secrets import Secret, scrub_excerpt
from harbor_secrets.stand_in_issuer import StandInIssuer
from harbor_testkit.cli_text import issuer_sections
from harbor_testkit.tmpfs import free_bytes, tmpfs

Run = Callable[..., Result]
CHANGE = Change("main", "sandbox", "service_provider", "k", "2030-01-01T00:05:00Z")
READ_TAIL = 64 << 10  # what the hook module reads of the output's end


def token_like(tag: str) -> str:
    return "eyJhbGciOiJSUzI1NiJ9." + tag + "".join(f"{n:03d}" for n in range(120)) + ".sig"


def pieces(secret: str, size: int = 12) -> list[str]:
    """Every run of ``size`` characters of ``secret``: none may appear in any output."""
    return [secret[i : i + size] for i in range(len(secret) - size + 1)]


def assert_no_piece(text: str, secret: str) -> None:
    leaked = [piece for piece in pieces(secret) if piece in text]
    assert not leaked, f"{len(leaked)} pieces of the token were printed"


def failure(script: str, *, timeout: float = 30.0, tmp: Path | None = None) -> HookError:
    path = (tmp or Path(tempfile.gettempdir())) / f"hook-{time.monotonic_ns()}.py"
    path.write_text(textwrap.dedent(script), encoding="utf-8")
    with pytest.raises(HookError) as caught:
        run_hook(
            OnWrite((sys.executable, str(path)), timeout),
            "local",
            [CHANGE],
            base_environ={},
            hidden=frozenset(),
        )
    return caught.value


SECRET_CHARS = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", min_size=8, max_size=80)
FILLER = st.text("abcdefghijklmnopqrstuvwxyz \n", max_size=60)


@given(secret=SECRET_CHARS, before=FILLER, after=FILLER, data=st.data())
def test_no_character_of_a_secret_survives_any_cut(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    """Secret and filler share no character, so any secret character left in the result is
    a piece of the secret that survived a cut."""
    text = before + secret + after
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    with only_secret(secret):
        shown = scrub_excerpt(text[start:end], cut_before=start > 0, cut_after=end < len(text))
    assert not set(shown.replace("***", "")) & set(secret)


@contextlib.contextmanager
def only_secret(value: str) -> Iterator[None]:
    """``value`` as the one registered secret, for the block: random values must not stay
    registered (they would scrub other tests' output)."""
    saved = (set(secrets._pinned), dict(secrets._ephemeral), secrets._by_length)
    secrets._pinned.clear()
    secrets._ephemeral.clear()
    secrets.register(value)
    try:
        yield
    finally:
        secrets._pinned.clear()
        secrets._pinned.update(saved[0])
        secrets._ephemeral.clear()
        secrets._ephemeral.update(saved[1])
        secrets._by_length = saved[2]


@pytest.mark.parametrize("cut", [1, 40, 100, 200, 299])
def test_a_token_cut_where_the_output_is_cut_is_not_printed(tmp_path: Path, cut: int) -> None:
    """The part read starts ``cut`` characters into the token (the old code read the first
    64 KiB, so the same token straddled that boundary instead)."""
    token = token_like(f"cut{cut}")
    Secret(token, ephemeral=True)
    after = READ_TAIL - (len(token) - cut)  # the read starts inside the token
    error = failure(
        f"""
        import sys
        sys.stdout.write("x" * {READ_TAIL - cut} + {token!r} + "y" * {after - 1} + "\\n")
        sys.exit(3)
        """,
        tmp=tmp_path,
    )
    assert "exited with status 3" in str(error)
    assert_no_piece(str(error), token)


def test_a_token_cut_at_the_old_64_kib_boundary_is_not_printed(tmp_path: Path) -> None:
    token = token_like("old-boundary")
    Secret(token, ephemeral=True)
    error = failure(
        f"""
        import sys
        sys.stdout.write("x" * ({READ_TAIL} - 50) + {token!r} + "\\n")
        sys.exit(1)
        """,
        tmp=tmp_path,
    )
    assert "***" in str(error)  # the whole token, at the very end: scrubbed
    assert_no_piece(str(error), token)


def test_a_token_cut_by_killing_the_command_mid_write_is_not_printed(tmp_path: Path) -> None:
    token = token_like("killed")
    Secret(token, ephemeral=True)
    error = failure(
        f"""
        import sys, time
        sys.stdout.write("reloading\\n" + {token[:150]!r})
        sys.stdout.flush()
        time.sleep(60)
        """,
        timeout=0.5,
        tmp=tmp_path,
    )
    assert "was killed after 0.5s" in str(error)
    assert "reloading" in str(error)
    assert_no_piece(str(error), token)


def test_a_command_printing_without_end_is_stopped_before_tmpdir_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``$TMPDIR`` is a 64 MiB tmpfs; the command prints 64 KiB per 2 ms until it is stopped,
    and notes if a write ever failed (a full disk)."""
    mount = tmp_path / "tmpdir"
    marker = tmp_path / "write-failed"
    with tmpfs(mount, size=64 << 20):
        monkeypatch.setattr(tempfile, "tempdir", str(mount))
        began = time.monotonic()
        error = failure(
            f"""
            import sys, time
            try:
                while True:
                    sys.stdout.write("z" * 65536)
                    sys.stdout.flush()
                    time.sleep(0.002)
            except OSError as exc:
                open({str(marker)!r}, "w").write(str(exc.errno))
                raise
            """,
            timeout=60,
            tmp=tmp_path,
        )
        elapsed = time.monotonic() - began
        assert f"printed more than {MAX_OUTPUT >> 20} MiB and was killed" in str(error)
        assert not marker.exists(), "the command filled $TMPDIR"
        assert elapsed < 30  # stopped by its output, long before its timeout
        assert free_bytes(mount) > 60 << 20  # and the spooled output is gone


@pytest.mark.parametrize("verbosity", [[], ["-vv"]], ids=["default", "vv"])
def test_the_cli_prints_no_piece_of_the_token_a_hook_echoes(
    tmp_path: Path, issuer: StandInIssuer, run_cli: Run, verbosity: list[str]
) -> None:
    """End to end: a hook prints 64 KiB of noise and then the token it was told about, then
    fails; neither stdout nor stderr may carry any piece of that token."""
    hook = tmp_path / "hook.py"
    hook.write_text(
        textwrap.dedent(
            f"""
            import os, sys
            token = open(os.environ["HARBOR_SECRETS_PATH"]).read()
            sys.stdout.write("x" * ({READ_TAIL} - 50) + token + "\\n")
            sys.exit(1)
            """
        ),
        encoding="utf-8",
    )
    (tmp_path / "tokens").mkdir()
    config = tmp_path / "harbor.toml"
    config.write_text(
        f"""
{issuer_sections(issuer.url, CLIENT_ID)}

[sinks.tokens]
provider = "files"
directory = "tokens"
on_write = ["{sys.executable}", "{hook}"]

[[targets]]
environments = ["sandbox"]
scopes = ["service_provider"]
""",
        encoding="utf-8",
    )
    result = run_cli("-c", str(config), *verbosity, "sync", "--force")
    assert result.code == 1, result.output
    assert "on_write FAILED" in result.stdout
    assert issuer.issued
    for token in issuer.issued:
        assert_no_piece(result.stdout, token)
        assert_no_piece(result.stderr, token)
