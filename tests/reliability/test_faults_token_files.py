"""The token-file store under a full disk and a file-size limit, on real file systems.

Its two files (``access_token``, ``record.json``) must change together or not at all:
writing the first and failing on the second used to leave a new token beside an old record,
and from then on ``get``, ``exec`` and ``status`` said the store held no token at all. Each
scenario runs the real CLI; the store must afterwards be byte for byte as seeded (every
name, link and file of the token's directory) and read back as the previous token. Kill -9
at every step of a write is covered, per system call, in
providers/envfile/tests/test_files_atomic_pair.py.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from harbor_secrets.stand_in_issuer import Fault, StandInIssuer
from harbor_testkit.tmpfs import PAGE, fill, tmpfs

from .support import (
    HTTP_BUDGET,
    VARIANTS,
    Attempt,
    Case,
    JobKey,
    Lab,
    TokenFilesStore,
    Workspace,
    in_parallel,
    unique,
)

JOB = JobKey("sandbox", "service_provider")
COMPONENT = "token files"
#: The stand-in issuer's tokens are about 410 bytes and their records about 700: the limit
#: lets the token file be written and stops the record.
FILE_SIZE_LIMIT = 600


def _case(name: str, fault: str) -> Case:
    return Case(name, COMPONENT, fault, 1, {"tokens": "kept"}, (1, 1), HTTP_BUDGET)


Prepared = list[tuple[str, Workspace, StandInIssuer]]


def _workspaces(lab: Lab) -> Prepared:
    prepared = []
    for variant in VARIANTS:
        issuer = lab.issuer()
        directory = lab.directory()
        tokens = directory / "tokens"
        tokens.mkdir(exist_ok=True)
        ws = lab.workspace([TokenFilesStore(tokens)], accounts_url=issuer.url, directory=directory)
        prepared.append((variant, ws, issuer))
    return prepared


def _run(lab: Lab, case: Case, prepared: Prepared, said: str, **kwargs: Any) -> None:
    runs = in_parallel([partial(lab.cli, ws, variant, **kwargs) for variant, ws, _ in prepared])
    lab.verify(
        case,
        [
            Attempt(variant, ws, run, issuer.token_requests)
            for (variant, ws, issuer), run in zip(prepared, runs, strict=True)
        ],
    )
    for (_, ws, _), run in zip(prepared, runs, strict=True):
        stored = ws.stores[0].read(JOB)
        assert stored is not None, "the store must still hold the previous token"
        assert stored.access_token.reveal() == ws.seeds[JOB].access_token.reveal(), run.stdout
        assert said in run.stdout, run.stdout


def test_a_file_size_limit_between_the_two_files_leaves_both_old(lab: Lab) -> None:
    case = _case(
        "file-size limit",
        f"prlimit --fsize={FILE_SIZE_LIMIT}: the token file fits, the record does not (EFBIG)",
    )
    prepared = _workspaces(lab)
    limit = ["prlimit", f"--fsize={FILE_SIZE_LIMIT}", "--"]
    _run(lab, case, prepared, "File too large", prefix=limit)


def test_a_full_disk_between_the_two_files_leaves_both_old(lab: Lab) -> None:
    case = _case(
        "disk full (tmpfs)",
        "a 4 KiB JWT on a tmpfs with one page left: the token fits, its record (two pages) "
        "does not (ENOSPC)",
    )
    prepared = []
    for variant in VARIANTS:
        # A JWT of one page: Keycloak tokens carrying many roles get this long.
        long_token = "eyJ" + unique() + "x" * (PAGE - 100)
        lab.also_valid.add(long_token)
        lab.canaries.add(f"long token {variant}", long_token)
        issuer = lab.issuer()
        issuer.inject(Fault.token(access_token=long_token))
        directory = lab.directory()
        mount = lab.stack.enter_context(tmpfs(directory / "tokens", size=1 << 20))
        ws = lab.workspace([TokenFilesStore(mount)], accounts_url=issuer.url, directory=directory)
        fill(mount, leave=PAGE)
        prepared.append((variant, ws, issuer))
    _run(lab, case, prepared, "No space left on device")
