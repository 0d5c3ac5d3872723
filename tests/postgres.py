"""A throwaway PostgreSQL server on 127.0.0.1 for integration tests.

Uses the server binaries of Debian's ``postgresql`` package; no client tools. The server
refuses to run as root, so under root it runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import tiers
from psycopg import sql
from servers import free_port

PG_ROOT = Path("/usr/lib/postgresql")
BIN_GLOB = f"{PG_ROOT}/*/bin"
SERVER_USER = "postgres"
NEEDED = ("initdb", "postgres")


def find_bin_dir() -> Path:
    """The newest installed server's bin folder; an operator-facing error if there is none."""
    found = [d for d in PG_ROOT.glob("*/bin") if all((d / b).is_file() for b in NEEDED)]
    if not found:
        raise RuntimeError(
            f"PostgreSQL server binaries not found ({BIN_GLOB}/postgres, initdb). "
            "Install them with: apt-get update && apt-get install -y postgresql"
        )
    return max(found, key=lambda d: int(d.parent.name) if d.parent.name.isdigit() else -1)


def _run_as() -> dict[str, Any]:
    """Popen arguments that drop root to the server user; nothing when not root."""
    if os.geteuid() != 0:
        return {}
    try:
        account = pwd.getpwnam(SERVER_USER)
    except KeyError as exc:
        raise RuntimeError(
            f"running as root needs the {SERVER_USER!r} system user to own the server; "
            "apt-get install -y postgresql creates it"
        ) from exc
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


class PostgresServer:
    """One server with a fixed port and data dir, which a test can stop and start again.

    Use as a context manager: entering runs ``initdb`` and starts the server, leaving
    stops it and deletes its files, whatever happened in between.
    """

    def __init__(
        self, root: Path, database: str = "solar", timezone: str = "UTC", ready_timeout: float = 30
    ) -> None:
        tiers.require("postgres")
        self.bin = find_bin_dir()
        self.log = root / "postgres.log"
        self.database = database
        self.timezone = timezone
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self._as_user = _run_as()
        self._base: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return self.database_url(self.database)

    def database_url(self, name: str) -> str:
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/{name}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def __enter__(self) -> PostgresServer:
        # Data and sockets live outside ``root``: pytest's tmp dirs are private to root
        # (the server user could not reach them) and too long for a unix socket path.
        self._base = Path(tempfile.mkdtemp(prefix="pg-test-"))
        try:
            if self._as_user:
                os.chown(self._base, self._as_user["user"], self._as_user["group"])
            self._initdb()
            self.start()
            self.create_database(self.database)
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._cleanup()

    def start(self) -> None:
        """Start the server on the same port and data dir; return once it accepts logins."""
        if self.running:
            raise RuntimeError("postgres is already running")
        assert self._base is not None, "enter the context manager first"
        command = [
            str(self.bin / "postgres"), "-D", str(self._base / "data"), "-p", str(self.port),
            "-k", str(self._base), "-c", "listen_addresses=127.0.0.1",
            "-c", f"timezone={self.timezone}",
            # Throwaway data: durability only costs time.
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self._base,
                # Own session: a Ctrl-C meant for pytest must not reach the server.
                start_new_session=True,
                **self._as_user,
            )
        self._wait_ready()

    def stop(self, timeout: float = 15) -> None:
        """Fast shutdown: open sessions are cut, as in a real outage. No-op if stopped."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        # SIGINT is a fast shutdown, SIGQUIT an immediate one; SIGKILL only as last resort.
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)):
            process.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(wait)
                return
        process.kill()
        process.wait()

    @contextlib.contextmanager
    def stopped(self) -> Iterator[None]:
        """The server is down inside the block and up again after it, even on failure."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        with self._connect("postgres") as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.database_url(name)

    def _connect(self, dbname: str, timeout: int = 3) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=SERVER_USER,
            dbname=dbname,
            connect_timeout=timeout,
            autocommit=True,
        )

    def _initdb(self) -> None:
        assert self._base is not None
        command = [
            str(self.bin / "initdb"), "-D", str(self._base / "data"), "-U", SERVER_USER,
            "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-sync",
        ]  # fmt: skip
        with self.log.open("ab") as out:
            done = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=self._base, **self._as_user
            )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}):\n{self.log.read_text()}")

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with {self._process.returncode}:\n{self.log.read_text()}"
                )
            try:
                self._connect("postgres", timeout=1).close()
            except psycopg.OperationalError:
                time.sleep(0.05)
            else:
                return
        self.stop()
        raise TimeoutError(
            f"postgres did not accept logins within {self.ready_timeout} s:\n{self.log.read_text()}"
        )

    def _cleanup(self) -> None:
        try:
            self.stop()
        finally:
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None


@contextlib.contextmanager
def postgres_server(root: Path) -> Iterator[str]:
    """A real PostgreSQL server until the block ends; yields the SQLAlchemy URL."""
    with PostgresServer(root) as server:
        yield server.url
