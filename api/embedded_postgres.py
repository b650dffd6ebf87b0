"""The private PostgreSQL + PostGIS cluster gridmap runs when ``GRIDMAP_DATABASE_URL`` is unset.

It lets ``./dev.sh up`` and the test suite work on a machine with nothing but Python: the
PostgreSQL binaries come from apt when missing, and the cluster lives under
``settings.embedded.home`` (``<repo>/.gridmap``)::

    state.json   port, run_dir, server account, major version (not secret)
    password     the database superuser's password, mode 0600
    lock         flock'd while one process initialises, starts or stops the cluster
    cluster/     the run_dir: data/, socket/, postgres.log, owned by the server account

PostgreSQL refuses to run as root, so under root the server runs as ``embedded.os_user``
and the run_dir may move to ``/var/lib/gridmap/`` (see ``_choose_run_dir``).
Nothing here imports typer or fastapi; notes for the user go to a ``notify`` callback.
It lives beside the CLI and the app, the only code that starts it or asks for its URL: the
store (``geo.store``) takes a URL and never knows how its server was provided.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pwd
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from geo.errors import Conflict, DatabaseUnavailable, InvalidInput
from geo.settings import GridmapSettings

log = logging.getLogger(__name__)

#: Receives one-line notes (stale pid file removed, port changed, packages installed).
Notify = Callable[[str], None]

#: The database superuser of the embedded cluster (a PostgreSQL role, not an OS account).
DB_USER = "gridmap"
#: Where the run_dir goes when the server account cannot reach the home (root in CI).
SHARED_ROOT = Path("/var/lib/gridmap")

_SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes including the trailing NUL
_SOCKET_NAME = "/.s.PGSQL.65535"
_PORT_RANGE = (20000, 32000)  # below Linux's ephemeral range, so clients rarely take it
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ClusterStatus:
    """What ``gridmap db status`` shows; ``external`` means GRIDMAP_DATABASE_URL is in use."""

    running: bool
    pid: int | None
    port: int | None
    data_dir: Path | None
    url: str | None
    external: bool


# --- public API -------------------------------------------------------------------------


def database_url(settings: GridmapSettings) -> str:
    """Return the URL in use (SQLAlchemy form); fixes port and password but starts nothing."""
    if settings.database_url:
        return settings.database_url
    home = _home(settings)
    with _locked(home, None):
        state = _load_or_create_state(settings)
        return _embedded_url(settings, state.port, settings.embedded.database)


def ensure_running(settings: GridmapSettings, notify: Notify | None = None) -> str:
    """Start the embedded cluster if needed (idempotent) and return the URL of its database.

    With ``GRIDMAP_DATABASE_URL`` set this only checks that the server answers and returns
    that URL: an external server is someone else's to start.
    """
    if settings.database_url:
        _check_external(settings.database_url)
        return settings.database_url
    say = notify or log.warning
    home = _home(settings)
    with _locked(home, say):
        state = _load_or_create_state(settings)
        run_dir = _run_dir(settings, state, say)
        data_dir = run_dir / "data"
        running = _running(data_dir, say, clean=True)
        if running is None and _start(settings, state, run_dir, say):
            # Every database of this private cluster wants PostGIS: put it in template1
            # once, so that create_database (a test run's database) copies it for free.
            _create_postgis(_embedded_url(settings, state.port, "template1"))
        elif running is not None and state.port != running[1]:
            state.port = running[1]
            _save_state(home, state)
        url = _embedded_url(settings, state.port, settings.embedded.database)
        _create_if_missing(url, settings.embedded.database)
        return url


def stop(settings: GridmapSettings, notify: Notify | None = None) -> bool:
    """Stop the embedded cluster (fast shutdown); return whether it was running."""
    if settings.database_url:
        return False
    say = notify or log.warning
    home = settings.embedded.home.expanduser().resolve()
    if not (home / "state.json").exists():
        return False  # never initialised here: nothing to stop, nothing to create
    with _locked(home, say):
        state = _load_state(home)
        if state is None or state.run_dir is None:
            return False
        data_dir = Path(state.run_dir) / "data"
        running = _running(data_dir, say, clean=True)
        if running is None:
            return False
        _shut_down(running[0], data_dir)
        return True


def status(settings: GridmapSettings) -> ClusterStatus:
    """Report without starting or creating anything (no lock: it only reads)."""
    if settings.database_url:
        url = settings.database_url
        return ClusterStatus(
            running=_can_connect(url),
            pid=None,
            port=urlsplit(url).port or 5432,
            data_dir=None,
            url=url,
            external=True,
        )
    home = settings.embedded.home.expanduser().resolve()
    state = _load_state(home) if (home / "state.json").exists() else None
    if state is None:
        return ClusterStatus(False, None, settings.embedded.port, None, None, False)
    data_dir = Path(state.run_dir) / "data" if state.run_dir else None
    running = _running(data_dir, None, clean=False) if data_dir else None
    port = running[1] if running else (settings.embedded.port or state.port)
    password_file = home / "password"
    shown = (
        _embedded_url(settings, port, settings.embedded.database)
        if password_file.exists()
        else None
    )
    return ClusterStatus(
        running=running is not None,
        pid=running[0] if running else None,
        port=port,
        data_dir=data_dir,
        url=shown,
        external=False,
    )


def create_database(
    settings: GridmapSettings, name: str, *, replace: bool = False, notify: Notify | None = None
) -> str:
    """Create database ``name`` with PostGIS on the same server and return its URL.

    For throwaway databases (the test suite's ``gridmap_test_<pid>``); the embedded
    cluster is started first, an external server is used as it is.
    """
    _check_name(name)
    url = ensure_running(settings, notify)
    with _admin(url) as conn:
        if _exists(conn, name):
            if not replace:
                raise Conflict(
                    f"database {name} exists already", fix="drop it first or pass replace=True"
                )
            _drop(conn, name)
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except psycopg.Error as err:
            raise _unavailable(f"cannot create database {name}", err) from None
    new_url = _with_database(url, name)
    _create_postgis(new_url)
    return new_url


def drop_database(settings: GridmapSettings, name: str) -> None:
    """Drop a throwaway database (closing its connections); refuse the main one."""
    _check_name(name)
    url = database_url(settings)
    if name == _database_of(url):
        raise InvalidInput(f"refusing to drop {name}: it is gridmap's own database", field="name")
    with _admin(url) as conn:
        _drop(conn, name)


# --- state and files -----------------------------------------------------------------


@dataclass
class _State:
    port: int
    run_dir: str | None = None
    os_user: str | None = None
    major: int | None = None


def _home(settings: GridmapSettings) -> Path:
    home = settings.embedded.home.expanduser().resolve()
    if not home.exists():
        try:
            home.mkdir(parents=True)
            # Under root the server account may need to traverse the home to its run_dir.
            home.chmod(0o711 if os.geteuid() == 0 else 0o700)
        except FileExistsError:
            pass  # another process made it a moment ago
        except OSError as err:
            raise DatabaseUnavailable(
                f"cannot create {home}: {err.strerror}", fix="set GRIDMAP_EMBEDDED__HOME"
            ) from None
    return home


@contextlib.contextmanager
def _locked(home: Path, say: Notify | None) -> Iterator[None]:
    """Serialise init/start/stop across processes (tests and CLI may start at once)."""
    with open(home / "lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if say:
                say("waiting for another gridmap process to finish with the embedded cluster")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _load_state(home: Path) -> _State | None:
    path = home / "state.json"
    try:
        raw = json.loads(path.read_text())
        return _State(**raw)
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as err:
        raise DatabaseUnavailable(
            f"{path} is damaged ({err})", fix=f"run `gridmap db down` and remove {path}"
        ) from None


def _save_state(home: Path, state: _State) -> None:
    tmp = home / "state.json.tmp"
    tmp.write_text(json.dumps(asdict(state), indent=2) + "\n")
    tmp.replace(home / "state.json")


def _load_or_create_state(settings: GridmapSettings) -> _State:
    home = _home(settings)
    state = _load_state(home)
    if state is None:
        state = _State(port=settings.embedded.port or _free_port())
        _save_state(home, state)
    _password(home)
    return state


def _password(home: Path) -> str:
    """Read the superuser password, generating it (hex, so URL-safe) on first use."""
    path = home / "password"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = secrets.token_hex(16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def _embedded_url(settings: GridmapSettings, port: int, database: str) -> str:
    password = _password(_home(settings))
    return f"postgresql+psycopg://{DB_USER}:{password}@127.0.0.1:{port}/{database}"


# --- the server account and its directory -------------------------------------------------


def _server_user(settings: GridmapSettings, state: _State, say: Notify) -> str | None:
    """The OS account that runs postgres: None means the current user (not root)."""
    if os.geteuid() != 0:
        return None
    name = state.os_user or settings.embedded.os_user
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    cmd = [useradd, "--system", "--no-create-home", "--user-group"]
    result = _run([*cmd, "--shell", "/usr/sbin/nologin", name], what="useradd")
    try:
        pwd.getpwnam(name)  # another process may have created it at the same time
    except KeyError:
        raise DatabaseUnavailable(
            f"cannot create system user {name}: {_last_line(result.stderr)}",
            fix=f"create it yourself: useradd --system --shell /usr/sbin/nologin {name}",
        ) from None
    say(f"created system user {name} to run PostgreSQL, which refuses to run as root")
    return name


def _as_user(cmd: list[str], user: str | None) -> list[str]:
    if user is None:
        return cmd
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--", *cmd]
    entry = pwd.getpwnam(user)
    return [
        "setpriv",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--init-groups",
        "--",
        *cmd,
    ]


def _choose_run_dir(home: Path, user: str | None) -> Path:
    local = home / "cluster"
    if user is None or _run([*_as_user(["test", "-x", str(home)], user)]).returncode == 0:
        return local
    # Why not <home>: CI clones into `$(mktemp -d)/fresh`, a 0700 root directory, and
    # postgres cannot run as root, so the server account could never reach <home>/cluster.
    # Keep its files under a root-level directory named after the home instead; state.json
    # (which stays under <home>) records where.
    digest = hashlib.sha256(str(home).encode()).hexdigest()[:12]
    return SHARED_ROOT / digest


def _run_dir(settings: GridmapSettings, state: _State, say: Notify) -> Path:
    """Find or create the directory holding data/, socket/ and the log."""
    home = _home(settings)
    if state.run_dir and (Path(state.run_dir) / "data" / "PG_VERSION").exists():
        run_dir = Path(state.run_dir)
        owner = pwd.getpwuid(run_dir.stat().st_uid).pw_name
        if os.geteuid() != 0 and run_dir.stat().st_uid != os.geteuid():
            raise DatabaseUnavailable(
                f"the embedded cluster at {run_dir} belongs to {owner}",
                fix=f"run gridmap as {owner} or as root, or set GRIDMAP_EMBEDDED__HOME",
            )
        if os.geteuid() == 0 and state.os_user != owner and owner != "root":
            state.os_user = owner
            _save_state(home, state)
        return run_dir
    user = _server_user(settings, state, say)
    run_dir = _choose_run_dir(home, user)
    try:
        if run_dir.parent == SHARED_ROOT:
            SHARED_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
        run_dir.mkdir(mode=0o700, exist_ok=True)
        (run_dir / "socket").mkdir(mode=0o700, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            for path in (run_dir, run_dir / "socket"):
                os.chown(path, entry.pw_uid, entry.pw_gid)
    except OSError as err:
        raise DatabaseUnavailable(
            f"cannot create {run_dir}: {err.strerror}", fix="set GRIDMAP_EMBEDDED__HOME"
        ) from None
    state.run_dir, state.os_user = str(run_dir), user
    _save_state(home, state)
    return run_dir


# --- finding and installing PostgreSQL + PostGIS ---------------------------------------------


@dataclass(frozen=True)
class _Binaries:
    bindir: Path
    sharedir: Path
    major: int

    @property
    def has_postgis(self) -> bool:
        return (self.sharedir / "extension" / "postgis.control").is_file()

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def _installations() -> list[_Binaries]:
    """Every PostgreSQL server install found, highest major version first."""
    bindirs: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = _run([pg_config, "--bindir"])
        if result.returncode == 0:
            bindirs.append(Path(result.stdout.strip()))
    bindirs += sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    found: dict[Path, _Binaries] = {}
    for bindir in bindirs:
        bindir = bindir.resolve()
        if bindir in found or not all((bindir / t).exists() for t in ("postgres", "initdb")):
            continue
        version = _run([str(bindir / "postgres"), "--version"])
        match = re.search(r"\(PostgreSQL\) (\d+)", version.stdout)
        if not match:
            continue
        major = int(match.group(1))
        found[bindir] = _Binaries(bindir, _sharedir(bindir, major), major)
    return sorted(found.values(), key=lambda b: b.major, reverse=True)


def _sharedir(bindir: Path, major: int) -> Path:
    own_config = bindir / "pg_config"
    if own_config.exists():
        result = _run([str(own_config), "--sharedir"])
        if result.returncode == 0 and result.stdout.strip():
            return Path(result.stdout.strip())
    for candidate in (
        Path(f"/usr/share/postgresql/{major}"),
        bindir.parent / "share" / "postgresql",
        bindir.parent / "share",
    ):
        if (candidate / "extension").is_dir():
            return candidate
    return Path(f"/usr/share/postgresql/{major}")


def _binaries(major: int | None, run_dir: Path, say: Notify) -> _Binaries:
    """PostgreSQL with PostGIS, of ``major`` when a data dir exists; installs what is missing."""
    installs = _installations()
    for attempt in range(2):
        candidates = [b for b in installs if major is None or b.major == major]
        with_postgis = [b for b in candidates if b.has_postgis]
        if with_postgis:
            return with_postgis[0]
        if major is not None and not candidates:
            have = ", ".join(str(b.major) for b in installs) or "none"
            raise DatabaseUnavailable(
                f"the embedded cluster in {run_dir} was made by PostgreSQL {major}, "
                f"but the PostgreSQL installed here is {have}",
                fix=f"run `gridmap db down`, remove {run_dir} (this deletes the embedded "
                f"database) and run `gridmap db up`; or install postgresql-{major}",
            )
        if attempt == 0:
            _install(candidates[0].major if candidates else None, say)
            installs = _installations()
    raise DatabaseUnavailable(
        "PostgreSQL with PostGIS is still missing after apt-get install",
        fix="install postgresql and postgresql-<version>-postgis-3, or set GRIDMAP_DATABASE_URL",
    )


def _install(major: int | None, say: Notify) -> None:
    """apt-get install PostgreSQL (when ``major`` is None) and its PostGIS 3 package."""
    if not shutil.which("apt-get"):
        raise DatabaseUnavailable(
            "PostgreSQL with PostGIS 3 is not installed and apt-get is not available",
            fix="install PostgreSQL and PostGIS 3 with your package manager, "
            "or set GRIDMAP_DATABASE_URL",
        )
    prefix = _root_prefix()
    updated = False

    def update() -> None:
        nonlocal updated
        if prefix is not None and not updated:
            say("running apt-get update")
            _apt([*prefix, "apt-get", "update"])
            updated = True

    if major is None:
        major = _apt_major()
        if major is None:
            update()
            major = _apt_major()
    packages = [] if major is not None and _installed_major(major) else ["postgresql"]
    packages.append(f"postgresql-{major or '<version>'}-postgis-3")
    command = "apt-get install -y --no-install-recommends " + " ".join(packages)
    if prefix is None or major is None:
        fix = f"{command} (as root)" if major else f"apt-get update && {command} (as root)"
        raise DatabaseUnavailable(
            "PostgreSQL with PostGIS 3 is not installed and gridmap cannot install it "
            "(not root, no password-less sudo)",
            fix=fix,
        )
    if not all(_apt_knows(p) for p in packages):
        update()
    say(f"installing {' '.join(packages)} with apt-get (a few minutes the first time)")
    _apt([*prefix, *command.split()])


def _installed_major(major: int) -> bool:
    return Path(f"/usr/lib/postgresql/{major}/bin/postgres").exists()


def _root_prefix() -> list[str] | None:
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and _run(["sudo", "-n", "true"]).returncode == 0:
        return ["sudo", "-n"]
    return None


def _apt_major() -> int | None:
    """The PostgreSQL major version the ``postgresql`` package installs here."""
    result = _run(["apt-cache", "show", "--no-all-versions", "postgresql"])
    match = re.search(r"^Depends:.*?postgresql-(\d+)", result.stdout, re.MULTILINE)
    return int(match.group(1)) if match else None


def _apt_knows(package: str) -> bool:
    result = _run(["apt-cache", "show", "--no-all-versions", package])
    return result.returncode == 0 and "Package:" in result.stdout


def _apt(cmd: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = _run(cmd, env=env, timeout=1800, what=cmd[cmd.index("apt-get")])
    if result.returncode != 0:
        raise DatabaseUnavailable(
            f"`{' '.join(cmd)}` failed: {_last_line(result.stderr or result.stdout)}",
            fix=f"run it yourself to see why: {' '.join(cmd)}",
        )


# --- initdb, start, stop -------------------------------------------------------------


def _start(settings: GridmapSettings, state: _State, run_dir: Path, say: Notify) -> bool:
    """Start the server, running initdb first if needed; return whether it did."""
    home = _home(settings)
    data_dir = run_dir / "data"
    version_file = data_dir / "PG_VERSION"
    data_major = int(version_file.read_text().split(".")[0]) if version_file.exists() else None
    binaries = _binaries(data_major, run_dir, say)
    user = state.os_user if os.geteuid() == 0 else None
    initialised = data_major is None
    if initialised:
        _initdb(binaries, data_dir, _password(home), user)
        state.major = binaries.major
        _save_state(home, state)
    fixed = settings.embedded.port
    log_file = run_dir / "postgres.log"
    for attempt in range(3):
        port = _usable_port(fixed or state.port, fixed is not None, say)
        if port != state.port:
            state.port = port
            _save_state(home, state)
        _write_conf(data_dir, port, run_dir / "socket", user)
        offset = log_file.stat().st_size if log_file.exists() else 0
        cmd = [binaries.tool("pg_ctl"), "-D", str(data_dir), "-l", str(log_file)]
        result = _run(_as_user([*cmd, "-w", "-t", "120", "start"], user), what="pg_ctl")
        if result.returncode == 0:
            return initialised
        tail = _read_from(log_file, offset)
        if "could not bind" in tail and fixed is None and attempt < 2:
            # Another process took the port between our check and postgres's bind.
            state.port = _free_port()
            say(f"port {port} was taken while starting; trying port {state.port}")
            _save_state(home, state)
            continue
        reason = _last_error(tail) or _last_line(result.stderr or result.stdout)
        raise DatabaseUnavailable(
            f"PostgreSQL did not start: {reason}", fix=f"read {log_file} for details"
        )
    raise AssertionError("unreachable: the last attempt returns or raises")


def _initdb(binaries: _Binaries, data_dir: Path, password: str, user: str | None) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DatabaseUnavailable(
            f"{data_dir} is not empty but holds no PostgreSQL cluster",
            fix=f"remove {data_dir} and run `gridmap db up` again",
        )
    pwfile = data_dir.parent / ".pwfile"  # initdb runs as the server account: it must read it
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(password + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    cmd = [
        binaries.tool("initdb"),
        "-D",
        str(data_dir),
        "-U",
        DB_USER,
        f"--pwfile={pwfile}",
        "--auth=scram-sha-256",
        # A fresh, empty cluster: skipping initdb's fsync saves seconds on a busy disk;
        # its only risk is an OS crash in the next moments, fixed by removing the run_dir.
        "--no-sync",
        "--encoding=UTF8",
        f"--locale={_locale()}",
    ]
    try:
        result = _run(_as_user(cmd, user), what="initdb", timeout=600)
    finally:
        pwfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise DatabaseUnavailable(
            f"initdb failed: {_last_line(result.stderr)}", fix=f"check that {data_dir} is writable"
        )
    with open(data_dir / "postgresql.conf", "a") as conf:
        conf.write("\n# gridmap rewrites gridmap.conf at every start (port, socket, sizes)\n")
        conf.write("include_if_exists = 'gridmap.conf'\n")


def _locale() -> str:
    result = _run(["locale", "-a"])
    names = {line.strip().lower().replace("-", "") for line in result.stdout.splitlines()}
    return "C.UTF-8" if "c.utf8" in names else "C"


def _write_conf(data_dir: Path, port: int, socket_dir: Path, user: str | None) -> None:
    # A socket path longer than sun_path makes postgres refuse to start; TCP is enough then.
    sockets = str(socket_dir) if len(str(socket_dir) + _SOCKET_NAME) < _SOCKET_PATH_MAX else ""
    path = data_dir / "gridmap.conf"
    path.write_text(
        "# Written by gridmap at every start: edit postgresql.conf instead.\n"
        "listen_addresses = '127.0.0.1'\n"
        f"port = {port}\n"
        f"unix_socket_directories = '{sockets}'\n"
        "max_connections = 100\n"
        "shared_buffers = 256MB\n"
    )
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _running(data_dir: Path, say: Notify | None, *, clean: bool) -> tuple[int, int] | None:
    """(pid, port) of the live postmaster; a stale postmaster.pid is removed when ``clean``."""
    pid_file = data_dir / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
    except FileNotFoundError:
        return None
    except PermissionError:
        raise DatabaseUnavailable(
            f"cannot read {pid_file}", fix="run gridmap as the owner of the cluster or as root"
        ) from None
    try:
        pid, port = int(lines[0]), int(lines[3])
    except (IndexError, ValueError):
        pid, port = (int(lines[0]) if lines and lines[0].isdigit() else 0), 0
    if pid > 0 and _is_postgres(pid):
        return (pid, port) if port else None
    if clean:
        pid_file.unlink(missing_ok=True)
        if say:
            say(f"removed a stale {pid_file} (process {pid} is gone)")
    return None


def _is_postgres(pid: int) -> bool:
    proc = Path("/proc")
    if (proc / "self").exists():
        try:
            # A zombie or a recycled pid has no, or another, command line.
            cmdline = (proc / str(pid) / "cmdline").read_bytes()
        except OSError:
            return False
        return b"postgres" in cmdline or b"postmaster" in cmdline
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _shut_down(pid: int, data_dir: Path) -> None:
    """Fast shutdown by signal, like ``pg_ctl stop -m fast``, without needing its binary."""
    pid_file = data_dir / "postmaster.pid"
    for sig, seconds in ((signal.SIGINT, 60.0), (signal.SIGQUIT, 15.0)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not _is_postgres(pid):
                pid_file.unlink(missing_ok=True)  # left behind only by SIGQUIT
                return
            time.sleep(0.05)
    raise DatabaseUnavailable(
        f"PostgreSQL (pid {pid}) did not stop", fix=f"kill {pid} and run `gridmap db down` again"
    )


def _usable_port(port: int, fixed: bool, say: Notify) -> int:
    if _port_is_free(port):
        return port
    if fixed:
        raise DatabaseUnavailable(
            f"port {port} on 127.0.0.1 is in use by another process",
            fix="free it, or unset GRIDMAP_EMBEDDED__PORT to let gridmap choose one",
        )
    new = _free_port()
    say(f"port {port} is in use by another process; the embedded cluster now uses port {new}")
    return new


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as postgres does
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_port() -> int:
    for _ in range(100):
        port = random.randint(*_PORT_RANGE)
        if _port_is_free(port):
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- databases -----------------------------------------------------------------------


def _libpq(url: str) -> str:
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "postgres"


def _check_name(name: str) -> None:
    if not _IDENTIFIER.match(name):
        raise InvalidInput(
            f"{name!r} is not a plain database name", field="name", fix="use [a-z0-9_], max 63"
        )


@contextlib.contextmanager
def _admin(url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the server's ``postgres`` database."""
    try:
        conn = psycopg.connect(_libpq(_with_database(url, "postgres")), autocommit=True)
    except psycopg.Error as err:
        raise _unavailable("cannot connect to PostgreSQL", err) from None
    with conn:
        yield conn


def _exists(conn: psycopg.Connection[Any], name: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
    return row is not None


def _drop(conn: psycopg.Connection[Any], name: str) -> None:
    try:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    except psycopg.Error as err:
        raise _unavailable(f"cannot drop database {name}", err) from None


def _create_if_missing(url: str, name: str) -> None:
    with _admin(url) as conn:
        if not _exists(conn, name):
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except psycopg.Error as err:
                raise _unavailable(f"cannot create database {name}", err) from None
    _create_postgis(url)


def _create_postgis(url: str) -> None:
    try:
        with psycopg.connect(_libpq(url), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    except psycopg.Error as err:
        raise _unavailable("cannot enable PostGIS", err) from None


def _check_external(url: str) -> None:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=10):
            pass
    except psycopg.Error as err:
        raise DatabaseUnavailable(
            f"cannot connect to GRIDMAP_DATABASE_URL: {_first_line(str(err))}",
            fix="start that server, correct the URL, or unset GRIDMAP_DATABASE_URL "
            "to use the embedded cluster",
        ) from None


def _can_connect(url: str) -> bool:
    try:
        with psycopg.connect(_libpq(url), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _unavailable(what: str, err: psycopg.Error) -> DatabaseUnavailable:
    return DatabaseUnavailable(
        f"{what}: {_first_line(str(err))}",
        fix="run `gridmap db status`, or check GRIDMAP_DATABASE_URL",
    )


# --- small helpers -------------------------------------------------------------------


def _run(
    cmd: list[str],
    *,
    what: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run quietly from / (the server account may not read our cwd), English messages."""
    environment = {**(env or os.environ), "LC_MESSAGES": "C"}
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, cwd="/", env=environment, timeout=timeout
        )
    except FileNotFoundError:
        raise DatabaseUnavailable(
            f"{what or cmd[0]} is not installed", fix=f"install the package providing {cmd[0]}"
        ) from None
    except subprocess.TimeoutExpired:
        raise DatabaseUnavailable(
            f"{what or cmd[0]} did not finish in {timeout:.0f} s", fix="try again"
        ) from None


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, errors="replace") as handle:
            handle.seek(offset)
            return handle.read()
    except OSError:
        return ""


def _last_error(log_text: str) -> str:
    errors = [ln for ln in log_text.splitlines() if "FATAL" in ln or "ERROR" in ln]
    return errors[-1].split(":  ", 1)[-1].strip() if errors else ""


def _first_line(text: str) -> str:
    """psycopg puts the message first and hints after it."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[0] if lines else "no message"


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"
