"""Offline checks of deploy/systemd and deploy/cron.

`systemd-analyze verify` and `systemd-analyze security` run where systemd-analyze exists
(any systemd host, this project's machines included); elsewhere those two tests are skipped
with the reason printed, as the project's rules allow for this tool only. Everything else
runs everywhere: the units' promises read off the files, both example configurations
through the real `config check`, and the crontab line parsed and then run twice at once
(with stand-ins for harbor-secrets and logger) to show that flock keeps runs apart.
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from doc_blocks import snippet

from harbor_secrets.freshness import RefreshPolicy
from harbor_testkit.environ import clean_environ

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "deploy" / "systemd"
SERVICE = SYSTEMD / "harbor-secrets.service"
TIMER = SYSTEMD / "harbor-secrets.timer"
SYSUSERS = SYSTEMD / "harbor-secrets.sysusers"
CRON = REPO / "deploy" / "cron" / "harbor-secrets.cron"
CONFIGS = {"systemd": SYSTEMD / "harbor-secrets.toml", "cron": CRON.with_suffix(".toml")}
CONFIG_FILE = "/etc/harbor-secrets/harbor-secrets.toml"
SCHEDULE_PERIOD = 60
#: `systemd-analyze security` exposure, in tenths: 2.0 of 10 ("OK" is below 4.0).
MAX_EXPOSURE = 20

Unit = dict[str, list[tuple[str, str]]]


def parse_unit(path: Path) -> Unit:
    """Sections → (key, value) in order; systemd allows a key more than once."""
    unit: Unit = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            unit[section] = []
        else:
            key, _, value = line.partition("=")
            unit[section].append((key.strip(), value.strip()))
    return unit


def settings(unit: Unit, section: str, key: str) -> list[str]:
    return [value for k, value in unit[section] if k == key]


def setting(unit: Unit, section: str, key: str) -> str:
    (value,) = settings(unit, section, key)
    return value


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


# --- systemd-analyze -------------------------------------------------------------------------


def systemd_analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        print("systemd-analyze not found: this is not a systemd host; unit files not verified")
        pytest.skip("systemd-analyze is not installed (not a systemd host)")
    return path


def runnable_copy(directory: Path, extra: str = "") -> Path:
    """The units with ExecStart pointing at an executable that exists on this machine
    (verify checks it); everything else byte for byte."""
    for unit in (SERVICE, TIMER):
        text = unit.read_text(encoding="utf-8")
        if unit == SERVICE:
            installed = Path(sys.executable).parent / "harbor-secrets"
            text = text.replace(
                "ExecStart=/usr/local/bin/harbor-secrets ", f"ExecStart={installed} "
            )
            text += extra
        (directory / unit.name).write_text(text)
    return directory / SERVICE.name


def verify(service: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", "--man=no", str(service), str(service.with_suffix(".timer"))],
        capture_output=True,
        text=True,
        cwd=service.parent,
        timeout=60,
        check=False,
    )


def test_systemd_analyze_verify_is_silent(tmp_path: Path) -> None:
    result = verify(runnable_copy(tmp_path))
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_systemd_analyze_verify_is_really_looking(tmp_path: Path) -> None:
    result = verify(runnable_copy(tmp_path, extra="ProtectSytem=strict\n"))
    assert "Unknown key" in result.stderr


def test_systemd_exposure_is_low(tmp_path: Path) -> None:
    service = runnable_copy(tmp_path)
    result = subprocess.run(
        [
            systemd_analyze(),
            "security",
            "--offline=yes",
            f"--threshold={MAX_EXPOSURE}",
            "--no-pager",
            str(service),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr


# --- what the units promise ------------------------------------------------------------------


def test_service_is_a_hardened_oneshot_as_its_own_user() -> None:
    unit = parse_unit(SERVICE)
    assert setting(unit, "Service", "Type") == "oneshot"
    assert setting(unit, "Service", "ExecStart") == (
        f"/usr/local/bin/harbor-secrets -c {CONFIG_FILE} sync"
    )
    user = setting(unit, "Service", "User")
    assert user == "harbor-secrets"
    assert SYSUSERS.read_text(encoding="utf-8").count(f"\nu {user} ") == 1
    assert seconds(setting(unit, "Service", "TimeoutStartSec")) < SCHEDULE_PERIOD
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
        "UMask": "0077",
    }
    for key, value in expected.items():
        assert setting(unit, "Service", key) == value, key
    assert "@system-service" in settings(unit, "Service", "SystemCallFilter")


def test_client_secret_arrives_as_a_systemd_credential() -> None:
    unit = parse_unit(SERVICE)
    name, _, source = setting(unit, "Service", "LoadCredential").partition(":")
    assert source.startswith("/etc/harbor-secrets/")
    config = tomllib.loads(CONFIGS["systemd"].read_text(encoding="utf-8"))
    # fixed: the configuration expands no variables such as $CREDENTIALS_DIRECTORY
    assert config["credentials"]["main"]["client_secret"] == (
        f"file:/run/credentials/{SERVICE.name}/{name}"
    )


def test_env_file_directory_is_the_writable_one() -> None:
    unit = parse_unit(SERVICE)
    config = tomllib.loads(CONFIGS["systemd"].read_text(encoding="utf-8"))
    directories = {str(Path(sink["path"]).parent) for sink in config["sinks"].values()}
    writable = set(" ".join(settings(unit, "Service", "ReadWritePaths")).split())
    assert directories <= writable
    state = setting(unit, "Service", "StateDirectory")
    assert directories == {f"/var/lib/{state}"}


def test_timer_fires_every_minute_on_the_second() -> None:
    unit = parse_unit(TIMER)
    assert setting(unit, "Timer", "OnCalendar") == "minutely"
    assert setting(unit, "Timer", "AccuracySec") == "1s"
    assert setting(unit, "Timer", "Persistent") == "false"
    assert setting(unit, "Install", "WantedBy") == "timers.target"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_example_config_passes_config_check(name: str) -> None:
    environ = clean_environ()
    command = [sys.executable, "-m", "harbor_secrets", "-c", str(CONFIGS[name])]
    result = subprocess.run(
        [*command, "config", "check", "--skip-references"],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    warnings = [
        line
        for line in (result.stdout + result.stderr).lower().splitlines()
        if "warning" in line and "/var/lib/harbor-secrets does not exist" not in line
    ]  # that directory is made on the host by the unit / the README's cron steps
    assert warnings == []


# --- cron ------------------------------------------------------------------------------------

CRON_FIELDS = (  # name, lowest, highest
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
)


def cron_field_ok(field: str, low: int, high: int) -> bool:
    """One crontab time field: *, N, N-M, lists of those, each with an optional /STEP."""
    for part in field.split(","):
        match = re.fullmatch(r"(\*|(\d+)(?:-(\d+))?)(?:/(\d+))?", part)
        if match is None:
            return False
        numbers = [int(n) for n in match.groups()[1:] if n is not None]
        if any(not low <= n <= high for n in numbers[:2]) or (match.group(4) == "0"):
            return False
    return True


def cron_job() -> tuple[dict[str, str], list[str], str, str]:
    """(environment, schedule fields, user, command) of the /etc/cron.d file's one job."""
    environment: dict[str, str] = {}
    jobs = []
    for raw in CRON.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        assignment = re.fullmatch(r"([A-Z_]+)=(.*)", line)
        if assignment:
            environment[assignment.group(1)] = assignment.group(2)
        else:
            jobs.append(line)
    (job,) = jobs
    *fields, user, command = job.split(None, 6)
    return environment, fields, user, command


def test_crontab_line_parses() -> None:
    environment, fields, user, command = cron_job()
    assert len(fields) == len(CRON_FIELDS)
    for field, (name, low, high) in zip(fields, CRON_FIELDS, strict=True):
        assert cron_field_ok(field, low, high), f"{name}: {field}"
    assert fields == ["*"] * 5
    assert user == setting(parse_unit(SERVICE), "Service", "User")
    assert environment["MAILTO"] == '""'
    assert "%" not in command  # cron would turn it into a newline


def test_cron_command_locks_times_out_and_runs_sync() -> None:
    _, _, _, command = cron_job()
    pipeline = command.split("|")
    argv = shlex.split(pipeline[0])
    assert argv[:2] == ["flock", "-n"]
    lock = Path(argv[2])
    assert argv[3] == "timeout"
    assert int(argv[4]) < SCHEDULE_PERIOD
    assert argv[5:] == ["harbor-secrets", "-c", CONFIG_FILE, "sync", "2>&1"]
    config = tomllib.loads(CONFIGS["cron"].read_text(encoding="utf-8"))
    env_dirs = {Path(sink["path"]).parent for sink in config["sinks"].values()}
    assert lock.parent in env_dirs  # the job user's own directory, not world-writable /tmp
    assert shlex.split(pipeline[1]) == ["logger", "-t", "harbor-secrets"]


def test_cron_runs_cannot_overlap(tmp_path: Path) -> None:
    """The crontab's command, run twice at once as cron would (sh -c), with stand-ins for
    harbor-secrets (takes 2 s and records each start) and logger: the second run exits at
    once without starting harbor-secrets, and a run after the first one has ended starts."""
    environment, _, _, command = cron_job()
    lock = shlex.split(command)[2]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    starts = tmp_path / "starts"
    fake = bin_dir / "harbor-secrets"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {starts}\nsleep 2\n')
    (bin_dir / "logger").write_text(f"#!/bin/sh\ncat >> {tmp_path / 'syslog'}\n")
    for stub in bin_dir.iterdir():
        stub.chmod(0o755)
    local = command.replace(lock, str(tmp_path / Path(lock).name))
    env = {"PATH": f"{bin_dir}:{environment['PATH']}", "HOME": str(tmp_path)}

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(["/bin/sh", "-c", local], env=env, text=True)

    first = start()
    deadline = time.monotonic() + 10
    while not starts.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    begun = time.monotonic()
    second = start()
    assert second.wait(timeout=10) == 0  # the pipeline's status is logger's
    assert time.monotonic() - begun < 1.5, "the second run waited for the lock"
    assert starts.read_text().splitlines() == [f"-c {CONFIG_FILE} sync"]
    assert first.wait(timeout=10) == 0
    third = start()
    assert third.wait(timeout=10) == 0
    assert len(starts.read_text().splitlines()) == 2


# --- a second host, offset by half a period (deploy/README.md "Two hosts") ------------------


def with_drop_in(unit: Unit, drop_in: Unit) -> Unit:
    """systemd's drop-in rule: an empty assignment resets a list setting, later ones add."""
    merged = {section: list(pairs) for section, pairs in unit.items()}
    for section, pairs in drop_in.items():
        current = merged.setdefault(section, [])
        for key, value in pairs:
            if value == "":
                current = [(k, v) for k, v in current if k != key]
            else:
                current.append((key, value))
        merged[section] = current
    return merged


def test_the_second_hosts_timer_fires_half_a_minute_after_the_first(tmp_path: Path) -> None:
    drop_in = tmp_path / "override.conf"
    drop_in.write_text(snippet("second-host-timer").code, encoding="utf-8")
    first = parse_unit(TIMER)
    second = with_drop_in(first, parse_unit(drop_in))
    assert settings(first, "Timer", "OnCalendar") == ["minutely"]  # *-*-* *:*:00
    (calendar,) = settings(second, "Timer", "OnCalendar")
    assert calendar == "*-*-* *:*:30"
    # Everything else is the shipped timer's (AccuracySec 1s keeps the offset exact).
    assert settings(second, "Timer", "AccuracySec") == ["1s"]
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # the calendar spec, as systemd reads it
        shown = subprocess.run(
            [analyze, "calendar", calendar], capture_output=True, text=True, check=False
        )
        assert shown.returncode == 0, shown.stderr
        assert re.search(r"Normalized form: \*-\*-\* \*:\*:30", shown.stdout), shown.stdout


def test_the_second_hosts_cron_line_is_the_first_half_a_minute_later() -> None:
    """The same command as /etc/cron.d/harbor-secrets, in the job user's crontab (no user
    field), after sleep 30; the run still ends before its next start (timeout 55 < 60)."""
    _, fields, _, command = cron_job()
    line = snippet("second-host-cron").code.strip()
    *second_fields, second_command = line.split(None, 5)
    assert second_fields == fields
    delay, _, rest = second_command.partition(" && ")
    assert delay == f"sleep {SCHEDULE_PERIOD // 2}"
    assert rest == command


def test_the_two_host_figures_are_the_freshness_policys() -> None:
    """deploy/README.md's "Two hosts" numbers come from the policy, not from prose: the
    reader floor with a run every 30 s and with one host lost, and the token requests two
    offset hosts make against one host's."""
    one_host = RefreshPolicy()
    two_hosts = dataclasses.replace(one_host, schedule_period=one_host.schedule_period / 2)
    section = " ".join(
        (REPO / "deploy" / "README.md")
        .read_text(encoding="utf-8")
        .split("## Two hosts", 1)[1]
        .split("\n## ", 1)[0]
        .split()
    )
    both, lost = two_hosts.reader_floor(), one_host.reader_floor()
    assert f"{one_host.refresh_before:g} − {two_hosts.schedule_period:g} = {both:g} s" in section
    assert f"the one-host {lost:g} s while either is lost" in section
    assert f"readers survive about {lost:g} s" in section
    ratio = one_host.write_interval / two_hosts.write_interval
    assert (
        f"every {two_hosts.write_interval:g} s instead of every {one_host.write_interval:g} s"
        in section
    )
    assert f"{ratio:g} times the token requests of one host" in section
