"""A small tmpfs, mounted for one test: a real file system that really fills up, or is
really read-only.

Disk-full and read-only cases must run against a file system, not a mock: mounting needs
root (the development machine and CI run tests as root). Mounting fails loudly, never skips.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")  # tmpfs allocates file data a page at a time


@contextmanager
def tmpfs(mount_point: Path, *, size: int = 1 << 20, read_only: bool = False) -> Iterator[Path]:
    """Mount a tmpfs of ``size`` bytes on ``mount_point`` (created if missing) for the block;
    ``read_only`` mounts it ``ro``, so every write fails with EROFS, even root's."""
    mount_point.mkdir(parents=True, exist_ok=True)
    options = f"{'ro,' if read_only else ''}size={size},mode=0755"
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"cannot mount a tmpfs on {mount_point} (these tests need root): {done.stderr}"
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "--lazy", str(mount_point)], check=True)


def free_bytes(path: Path) -> int:
    """What an unprivileged writer may still allocate on the file system holding ``path``."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


def fill(mount_point: Path, *, leave: int) -> Path:
    """Fill the file system so that only ``leave`` bytes (whole pages) stay free."""
    filler = mount_point / ".filler"
    size = free_bytes(mount_point) - leave
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(size, 0))  # real pages, not a sparse hole
    return filler
