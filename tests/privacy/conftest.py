# The engine tests' fixtures: a local SMTP server allowed, and fast password hashing.
from tests.campaigns.conftest import allow_local_smtp, fast_password_hashing  # noqa: F401  (pytest fixtures)
from tests.smtp_server import RecordingHandler, smtp_server_factory, tls_files  # noqa: F401  (pytest fixtures)
