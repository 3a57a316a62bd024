"""A private Dovecot for tests: Debian's `dovecot-imapd` and `dovecot-pop3d`, run in the foreground
with a configuration, base_dir and mail store of its own under a temporary folder.

It serves one passwd-file user, whose Maildir is `Dovecot.maildir`, over IMAPS (implicit TLS),
IMAP with STARTTLS, POP3S and POP3 with STLS, each on a free port of 127.0.0.1, with a self-signed
certificate made by openssl for `localhost`. The project trusts it only when SMTP_CA_FILE names
`Dovecot.cert_file`. A message can be put in the Maildir directly (`deliver`) or by a real MTA
(tests/postfix.py, `start_bounce_postfix`). Starting it needs root (Dovecot drops privileges to
its own users) and the packages; without them the test skips (or fails, under STRICT_SERVICES).
"""

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import need_service
from tests.isolation import _parent_death_signal, free_port

DOVECOT = "/usr/sbin/dovecot"
IMAP_BINARY = "/usr/lib/dovecot/imap"
POP3_BINARY = "/usr/lib/dovecot/pop3"
OPENSSL = "openssl"
# The mail user's uid and gid: Dovecot refuses root, and Postfix's virtual(8) delivers as it too.
MAIL_USER = "nobody"
START_SECONDS = 20
SERVER_NAME = "localhost"


@dataclass
class Dovecot:
    host: str
    imaps_port: int
    imap_port: int  # plain IMAP that offers STARTTLS (login only after it)
    pop3s_port: int
    pop3_port: int  # plain POP3 that offers STLS
    username: str
    password: str
    cert_file: Path  # the self-signed certificate: what SMTP_CA_FILE points to, to trust it
    maildir: Path  # the user's Maildir (new/, cur/, tmp/)
    folder: Path
    process: subprocess.Popen

    def deliver(self, raw: bytes) -> Path:
        """Put a message in the INBOX the way an MTA does: written in tmp/, renamed into new/."""
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.test"
        temporary = self.maildir / "tmp" / name
        temporary.write_bytes(raw)
        shutil.chown(temporary, user=MAIL_USER, group=_group_of(MAIL_USER))
        final = self.maildir / "new" / name
        temporary.rename(final)
        return final

    def stored(self) -> list[Path]:
        """Every message file in the INBOX, read or not."""
        return sorted([*(self.maildir / "new").iterdir(), *(self.maildir / "cur").iterdir()])

    def mail_ids(self) -> tuple[int, int]:
        """The uid and gid the mail is stored as (an MTA delivering into the Maildir writes as them)."""
        return _ids_of(MAIL_USER)

    def log(self) -> str:
        path = self.folder / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(15)
        shutil.rmtree(self.folder, ignore_errors=True)


def missing() -> str:
    for path, package in ((DOVECOT, "dovecot-core"), (IMAP_BINARY, "dovecot-imapd"), (POP3_BINARY, "dovecot-pop3d")):
        if not Path(path).exists():
            return f"Dovecot is not installed (Debian package `{package}`: apt-get install dovecot-imapd dovecot-pop3d)"
    if not shutil.which(OPENSSL):
        return "openssl is not installed (Debian package `openssl`)"
    if os.geteuid() != 0:
        return "starting Dovecot needs root"
    return ""


def start_dovecot(*, username: str = "bounces", password: str = "mailbox-secret") -> Dovecot:
    """Start a private Dovecot with one user; stop it with `stop()`."""
    reason = missing()
    if reason:
        need_service(reason)
    # Not under pytest's tmp_path: Dovecot's own users (and Postfix's virtual, as the mail user)
    # enter these folders, and pytest's are root-only.
    folder = Path(tempfile.mkdtemp(prefix="dovecot-test-"))
    folder.chmod(0o755)
    cert_file, key_file = _self_signed_certificate(folder)
    home = folder / "mail" / username
    maildir = home / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (maildir / sub).mkdir(parents=True)
    for path in (folder / "mail", home, maildir, *(maildir / sub for sub in ("new", "cur", "tmp"))):
        shutil.chown(path, user=MAIL_USER, group=_group_of(MAIL_USER))
    uid, gid = _ids_of(MAIL_USER)
    users = folder / "users"
    users.write_text(f"{username}:{{PLAIN}}{password}:{uid}:{gid}::{home}::\n")
    ports = {name: free_port() for name in ("imaps", "imap", "pop3s", "pop3")}
    config = folder / "dovecot.conf"
    config.write_text(_configuration(folder, users, cert_file, key_file, ports))
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)],
        stdin=subprocess.DEVNULL,
        stdout=(folder / "stdout.log").open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=_parent_death_signal(),
    )
    instance = Dovecot(
        host=SERVER_NAME,
        imaps_port=ports["imaps"],
        imap_port=ports["imap"],
        pop3s_port=ports["pop3s"],
        pop3_port=ports["pop3"],
        username=username,
        password=password,
        cert_file=cert_file,
        maildir=maildir,
        folder=folder,
        process=process,
    )
    try:
        _wait_for_ports(instance, ports.values())
    except RuntimeError:
        instance.stop()
        raise
    return instance


def _configuration(folder: Path, users: Path, cert_file: Path, key_file: Path, ports: dict[str, int]) -> str:
    return f"""
protocols = imap pop3
listen = 127.0.0.1
base_dir = {folder}/run
state_dir = {folder}/state
instance_name = dovecot-test-{folder.name}
log_path = {folder}/dovecot.log
info_log_path = {folder}/dovecot.log
ssl = required
ssl_cert = <{cert_file}
ssl_key = <{key_file}
ssl_min_protocol = TLSv1.2
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users}
}}
service imap-login {{
  inet_listener imap {{
    port = {ports["imap"]}
  }}
  inet_listener imaps {{
    port = {ports["imaps"]}
    ssl = yes
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {ports["pop3"]}
  }}
  inet_listener pop3s {{
    port = {ports["pop3s"]}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
}}
service pop3-login {{
  chroot =
}}
"""


def _self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            OPENSSL,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            f"/CN={SERVER_NAME}",
            "-addext",
            f"subjectAltName=DNS:{SERVER_NAME}",
            "-keyout",
            str(key_file),
            "-out",
            str(cert_file),
        ],
        check=True,
        capture_output=True,
    )
    return cert_file, key_file


def _ids_of(user: str) -> tuple[int, int]:
    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _group_of(user: str) -> int:
    return _ids_of(user)[1]


def _wait_for_ports(instance: Dovecot, ports) -> None:
    deadline = time.monotonic() + START_SECONDS
    waiting = set(ports)
    while waiting and time.monotonic() < deadline:
        if instance.process.poll() is not None:
            raise RuntimeError(f"dovecot exited ({instance.process.returncode}):\n{_output(instance)}")
        for port in list(waiting):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    waiting.discard(port)
        time.sleep(0.05)
    if waiting:
        raise RuntimeError(f"dovecot is not listening on {sorted(waiting)}:\n{_output(instance)}")


def _output(instance: Dovecot) -> str:
    stdout = instance.folder / "stdout.log"
    return (stdout.read_text(errors="replace") if stdout.exists() else "") + instance.log()
