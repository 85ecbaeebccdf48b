"""A real IMAP server for tests: Debian's dovecot (`dovecot-imapd`, `make dovecot` installs it) with
a config file of its own, on a free loopback port, plaintext (no TLS), one user whose mail is a
maildir in a temporary folder. Messages go in with IMAP APPEND, as a mail server's delivery would.

    with DovecotServer() as imap:
        imap.append(raw_message_bytes)          # into INBOX
        imap.env  # IMAP_HOST, IMAP_PORT, IMAP_USERNAME, IMAP_PASSWORD, IMAP_TLS=false

Dovecot runs as root (it refuses root for mail and for its login processes, so the mail belongs
to `nobody`); `doveadm -c FILE stop` stops it.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest

from deploy.servers import free_port

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
MAIL_USER = "nobody"  # any non-root account: dovecot refuses to keep mail as root
USERNAME = "recruiter@example.com"
PASSWORD = "imap-test-password"

_CONFIG = """\
protocols = imap
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = {uid}
mail_location = maildir:{root}/mail/%u
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
"""


class DovecotServer:
    """One dovecot with its own config, port and mail folder; a context manager."""

    def __init__(self, folder: str = "INBOX") -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.username = USERNAME
        self.password = PASSWORD
        self.folder = folder
        # Not under pytest's tmp_path: its folders are 0700, and the mail user must reach the mail.
        self.root = Path(tempfile.mkdtemp(prefix="dovecot-"))
        self.config = self.root / "dovecot.conf"

    @property
    def env(self) -> dict[str, str]:
        """The campaign service's settings for this mailbox."""
        return {
            "IMAP_HOST": self.host,
            "IMAP_PORT": str(self.port),
            "IMAP_USERNAME": self.username,
            "IMAP_PASSWORD": self.password,
            "IMAP_TLS": "false",
            "IMAP_FOLDER": self.folder,
        }

    def start(self) -> DovecotServer:
        if not os.access(DOVECOT, os.X_OK):
            # A setup error, not a reason to pass quietly: `make test` installs it.
            pytest.fail(f"{DOVECOT} is missing: `make dovecot` installs Debian's dovecot-imapd")
        user = pwd.getpwnam(MAIL_USER)
        self.root.chmod(0o755)
        (self.root / "mail").mkdir(mode=0o755)
        os.chown(self.root / "mail", user.pw_uid, user.pw_gid)
        self.config.write_text(
            _CONFIG.format(
                root=self.root,
                uid=user.pw_uid,
                gid=user.pw_gid,
                port=self.port,
                password=self.password,
            )
        )
        # Dovecot forks into the background: its output goes to a file, not to a pipe that the
        # daemon would hold open (and `run` wait on) until it stops.
        with (self.root / "startup.log").open("wb") as output:
            started = subprocess.run(
                [DOVECOT, "-c", str(self.config)], stdout=output, stderr=output, check=False
            )
        if started.returncode != 0:
            raise RuntimeError(f"dovecot refused to start: {self._startup_log()}")
        self._wait_until_serving()
        if self.folder != "INBOX":
            with self.connect() as client:
                client.create(self.folder)
        return self

    def stop(self) -> None:
        subprocess.run([DOVEADM, "-c", str(self.config), "stop"], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def connect(self) -> imaplib.IMAP4:
        """A logged-in stdlib client; close it with `logout()` (or use it in a `with`)."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        client.login(self.username, self.password)
        return client

    def append(self, message: bytes, folder: str | None = None) -> None:
        """Put one message (RFC 5322 bytes) into the folder, unread."""
        with self.connect() as client:
            status, detail = client.append(folder or self.folder, "", None, message)
            assert status == "OK", detail

    def flags(self, folder: str | None = None) -> list[bytes]:
        """Every message's flags in the folder, in order (to see what the client changed)."""
        with self.connect() as client:
            client.select(folder or self.folder, readonly=True)
            status, data = client.fetch("1:*", "(FLAGS)")
            assert status == "OK", data
            return [item for item in data if isinstance(item, bytes)]

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text() if path.exists() else ""

    def _startup_log(self) -> str:
        path = self.root / "startup.log"
        return path.read_text() if path.exists() else ""

    def _wait_until_serving(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self.connect():
                    return
            except (OSError, imaplib.IMAP4.error):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"dovecot did not start:\n{self.log()}") from None
                time.sleep(0.05)


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A real IMAP server of the test's own, with an empty INBOX."""
    with DovecotServer() as server:
        yield server
