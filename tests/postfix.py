"""A private Postfix instance for tests: Debian's `postfix` package, its own configuration, queue
and log in a temporary folder, listening on a free port of 127.0.0.1, discarding what it accepts.

Postfix is a real MTA nobody here wrote: its STARTTLS, its replies and its per-client rate limit
(anvil: smtpd_client_message_rate_limit per anvil_rate_time_unit) are the ones providers run.
Starting it needs root (its master drops privileges to the `postfix` user) and the package;
without them the test skips (or fails, under STRICT_SERVICES).
"""

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port, need_service

POSTFIX = "/usr/sbin/postfix"
MASTER_CF = "/etc/postfix/master.cf"


@dataclass
class Postfix:
    host: str
    port: int
    config_dir: Path
    maillog: Path

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def message_ids(self) -> list[str]:
        """The Message-ID of every message Postfix queued (accepted), in order, repeats kept."""
        return re.findall(r"cleanup\[\d+\]: \w+: message-id=<([^>]*)>", self.log())

    def refusals(self) -> list[str]:
        return re.findall(r"warning: Message delivery request rate limit exceeded: .*", self.log())

    def stop(self):
        subprocess.run([POSTFIX, "-c", str(self.config_dir), "stop"], check=False, capture_output=True)
        shutil.rmtree(self.config_dir.parent, ignore_errors=True)


def missing():
    if not Path(POSTFIX).exists():
        return "Postfix is not installed (Debian package `postfix`; .ci/run installs it)"
    if os.geteuid() != 0:
        return "starting Postfix needs root"
    return ""


def start_postfix(*, main_cf: dict, tls=None) -> Postfix:
    """Start an instance in a folder of its own; `main_cf` adds or overrides main.cf settings; `tls`
    (TlsFiles) makes it offer STARTTLS with that certificate. Stop it with `stop()`."""
    reason = missing()
    if reason:
        need_service(reason)
    # Not under pytest's tmp_path: Postfix opens its data files as the `postfix` user, who cannot
    # enter pytest's root-only folders.
    folder = Path(tempfile.mkdtemp(prefix="postfix-test-"))
    folder.chmod(0o755)
    config_dir, data_dir, queue_dir = folder / "etc", folder / "data", folder / "queue"
    for path in (config_dir, data_dir, queue_dir):
        path.mkdir(exist_ok=True)
    shutil.chown(data_dir, user="postfix")
    port = free_port()
    settings = {
        "compatibility_level": "3.6",
        "queue_directory": queue_dir,
        "data_directory": data_dir,
        "mail_owner": "postfix",
        "setgid_group": "postdrop",
        "inet_interfaces": "127.0.0.1",
        "inet_protocols": "ipv4",
        "myhostname": "postfix.test.example",
        "mydestination": "",
        "mynetworks": "127.0.0.0/8",
        "smtpd_relay_restrictions": "permit_mynetworks, reject",
        "default_transport": "discard:accepted by the test instance",
        "maillog_file": folder / "maillog",
        "maillog_file_prefixes": folder,
        # Anvil exempts $mynetworks by default: the test's client must be counted like anyone.
        "smtpd_client_event_limit_exceptions": "",
        "smtpd_banner": "$myhostname ESMTP",
    }
    if tls is not None:
        settings.update(
            {
                "smtpd_tls_cert_file": tls.cert_file,
                "smtpd_tls_key_file": tls.key_file,
                "smtpd_tls_security_level": "may",
                "smtpd_tls_loglevel": 1,
            }
        )
    settings.update(main_cf)
    (config_dir / "main.cf").write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
    (config_dir / "master.cf").write_text(_master_cf(port))
    started = subprocess.run([POSTFIX, "-c", str(config_dir), "start"], capture_output=True, text=True)
    instance = Postfix(host="127.0.0.1", port=port, config_dir=config_dir, maillog=folder / "maillog")
    if started.returncode != 0:
        raise RuntimeError(f"postfix did not start: {started.stderr or started.stdout}\n{instance.log()}")
    _wait_for_port(port)
    return instance


def _master_cf(port):
    """Debian's master.cf, its smtp service on our port, no service chrooted (no jail to build)."""
    lines = []
    for line in Path(MASTER_CF).read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"
            line = " ".join(fields)
        lines.append(line)
    return "\n".join(lines) + "\n"


def _wait_for_port(port, timeout=15.0):
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"postfix is not listening on port {port}")


# The domain of the "unknown local user" a bounce test sends to, and the VERP domain its DSN goes back to.
UNKNOWN_USER_DOMAIN = "mx.test.example"
BOUNCE_DOMAIN = "bounce.test.example"


def start_bounce_postfix(*, dovecot) -> Postfix:
    """An instance that accepts mail for anyone @UNKNOWN_USER_DOMAIN (local_recipient_maps empty: a
    catch-all), then bounces it after queueing, since no such local user exists: the DSN goes to the
    message's envelope sender, a VERP address @BOUNCE_DOMAIN, which virtual(8) delivers into the
    Maildir of `dovecot`'s user (tests.dovecot), as the mail user Dovecot reads it as."""
    uid, gid = dovecot.mail_ids()
    return start_postfix(
        main_cf={
            "mydestination": UNKNOWN_USER_DOMAIN,
            "myorigin": UNKNOWN_USER_DOMAIN,
            "local_recipient_maps": "",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "virtual_mailbox_domains": BOUNCE_DOMAIN,
            "virtual_mailbox_base": dovecot.maildir.parent.parent,
            # static: every address of the domain (each VERP address) into the one Maildir ("/": Maildir format).
            "virtual_mailbox_maps": f"static:{dovecot.maildir.parent.name}/{dovecot.maildir.name}/",
            "virtual_uid_maps": f"static:{uid}",
            "virtual_gid_maps": f"static:{gid}",
        }
    )
