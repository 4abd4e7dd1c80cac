"""No race redirects a token-file write: a swapped directory never leads it outside the store.

A user who can write ``<directory>/sandbox`` can swap ``service_provider`` for a symbolic
link to another directory at any moment (``renameat2(RENAME_EXCHANGE)`` in a loop). A
writer that checks the path and then acts on the path again would create ``..data`` there
and prune that directory's generations. Here the swap happens deterministically, at every
single file-system call one write makes (the calls are counted, and the n-th one swaps
first), and the victim directory must come out exactly as it went in: the write lands in
the store's real directory or fails cleanly, and nothing outside the store changes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from harbor_secrets_envfile import TokenFilesProvider

from harbor_secrets import StoreError
from harbor_testkit.records import make_record

BASE = datetime(2030, 1, 1, tzinfo=UTC)
KEY = "sandbox/service_provider"
#: The file-system calls a write can make between a check and the act it checked for.
OS_CALLS = (
    "open",
    "stat",
    "lstat",
    "mkdir",
    "readlink",
    "symlink",
    "replace",
    "rename",
    "unlink",
    "fsync",
    "fchmod",
    "scandir",
)

Tree = dict[str, tuple[str, str]]


def tree(root: Path) -> Tree:
    """Every name below ``root`` with what it is: a link's target, a file's bytes."""
    found: Tree = {}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = Path(directory, name)
            relative = str(path.relative_to(root))
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_dir():
                found[relative] = ("dir", oct(path.stat().st_mode))
            else:
                found[relative] = ("file", path.read_text())
    return found


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """Another projected volume on the host: the kubelet's layout, which must not change."""
    directory = tmp_path / "victim"
    generation = directory / "..2020_01_01_00_00_00.kubelet"
    generation.mkdir(parents=True)
    (generation / "token").write_text("the kubelet's token")
    (directory / "..data").symlink_to(generation.name)
    (directory / "token").symlink_to("..data/token")
    return directory


class SwapAt:
    """Counts the file-system calls of ``os`` (and ``shutil.rmtree``) and runs ``swap``
    just before the n-th one."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, swap: Callable[[], None]) -> None:
        self.calls = 0
        self.at = 0
        self.swap = swap
        self.busy = False
        for name in OS_CALLS:
            monkeypatch.setattr(os, name, self._counted(getattr(os, name)))
        monkeypatch.setattr(shutil, "rmtree", self._counted(shutil.rmtree))

    def _counted(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if not self.busy:
                self.calls += 1
                if self.calls == self.at:
                    self.busy = True
                    try:
                        self.swap()
                    finally:
                        self.busy = False
            return real(*args, **kwargs)

        return counted

    def run(self, at: int, action: Callable[[], object]) -> None:
        self.calls, self.at = 0, at
        with contextlib.suppress(StoreError):  # refusing is fine; writing elsewhere is not
            action()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    tokens = tmp_path / "tokens"
    tokens.mkdir()
    TokenFilesProvider(tokens).write(KEY, make_record(-120, issued_at=BASE))
    TokenFilesProvider(tokens).write(KEY, make_record(-60, issued_at=BASE))
    return tokens


def test_swapping_the_token_directory_for_a_link_at_any_step_changes_nothing_outside(
    store: Path, victim: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = store / KEY
    aside = store / "sandbox" / "aside"
    before = tree(victim)
    rename, symlink = os.rename, os.symlink  # the attacker's own, not counted

    def swap() -> None:
        rename(folder, aside)
        symlink(victim, folder)

    def restore() -> None:
        if folder.is_symlink():
            folder.unlink()
            rename(aside, folder)

    calls = SwapAt(monkeypatch, swap)
    calls.run(0, lambda: TokenFilesProvider(store).write(KEY, make_record(0, issued_at=BASE)))
    steps = calls.calls
    assert steps > 20, "the write made too few calls for this test to mean anything"
    for at in range(1, steps + 1):
        provider, record = TokenFilesProvider(store), make_record(at, issued_at=BASE)
        calls.run(at, partial(provider.write, KEY, record))
        restore()
        assert tree(victim) == before, f"the swap before call {at} of {steps} reached the victim"
    stored = TokenFilesProvider(store).read(KEY)
    assert stored is not None  # the store itself is still whole
