"""Settings, read from the environment.

With nothing set the project runs on embedded defaults: a PostgreSQL server in
var/ (config.embedded_postgres), kombu's filesystem broker and a development
secret key. Production (`DJANGO_ENV=production`) refuses to start without the
secrets it needs.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from config import embedded_postgres

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name, default):
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name, default=""):
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_port(name, default):
    value = os.environ.get(name, "").strip() or str(default)
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ImproperlyConfigured(f"{name} must be a TCP port number from 1 to 65535, not {value!r}.")
    return int(value)


PRODUCTION = os.environ.get("DJANGO_ENV", "development").strip().lower() == "production"

if PRODUCTION:
    # SITE_URL goes into every tracking and confirmation link, ALLOWED_HOSTS decides
    # which requests are served: without them production would quietly misbehave.
    # REDIS_URL holds the cache the rate limits count in: without it each process would
    # count on its own, in local memory, and every web worker would multiply the limits.
    _missing = [
        name
        for name in ("SECRET_KEY", "FIELD_ENCRYPTION_KEYS", "SITE_URL", "ALLOWED_HOSTS", "REDIS_URL")
        if not os.environ.get(name)
    ]
    if _missing:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs these environment variables set: " + ", ".join(_missing)
        )

_DEVELOPMENT_SECRET_KEY = "django-insecure-development-key-never-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or _DEVELOPMENT_SECRET_KEY
DEBUG = env_bool("DEBUG", default=not PRODUCTION and not os.environ.get("SECRET_KEY"))
if not DEBUG and SECRET_KEY == _DEVELOPMENT_SECRET_KEY:
    # The built-in key is public: anyone could forge the tracking, unsubscribe and subscription
    # tokens it signs. Only a development server (DEBUG on) may run with it.
    raise ImproperlyConfigured(
        "DEBUG is off but SECRET_KEY is not set (the built-in development key is public and would sign "
        "every tracking, unsubscribe and subscription link). Set SECRET_KEY to a long random value, "
        "e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))', or DEBUG=1 for development."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost,testserver")
# The development processes' ports (`make run`, the Procfile): the web server's and the SMTP sink's.
# `manage.py check_ports` names the variable to change when another program holds one.
WEB_PORT = env_port("WEB_PORT", 8000)
SINK_PORT = env_port("SINK_PORT", 1025)
SITE_URL = os.environ.get("SITE_URL", f"http://127.0.0.1:{WEB_PORT}").rstrip("/")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", SITE_URL)
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks, comma-separated):
# rate limits and login lockouts count the client it names (accounts.client_address).
TRUSTED_PROXIES = env_list("TRUSTED_PROXIES")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "django_celery_results",
    "import_export",
    "django_ckeditor_5",
    "axes",
    "ninja",
    "accounts",
    "sending",
    "contacts",
    "campaigns",
    "tracking",
    "bounces",
    "delivery",
    "reporting",
    "privacy",
    "api",
]

MIDDLEWARE = [
    # First: a verified tracking domain's host is accepted for the tracking URLs only (every other path
    # on it is a 404) before anything reads the host; every other host meets ALLOWED_HOSTS as ever.
    "config.hosts.TrackingDomainMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserTimezoneMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "accounts.middleware.ContentSecurityPolicyMiddleware",
    # Last, as django-axes requires: it turns a login refused for a lockout into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.signup",
                "accounts.context_processors.notices",
            ],
        },
    },
]

# --- database -------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", "")
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
else:
    # No server configured: the embedded PostgreSQL in VAR_DIR, over its unix socket there.
    DATABASES = {"default": embedded_postgres.database_settings(VAR_DIR)}
if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        f"DATABASE_URL names a {DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]} database: this project is "
        "PostgreSQL only (a postgres:// URL, or unset for the embedded PostgreSQL in VAR_DIR)."
    )

if env_bool("DATABASE_POOL", True):
    # Django owns a psycopg pool per process; CONN_MAX_AGE must stay 0 with it.
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_MAX", "10")),
        "timeout": 10,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- auth -----------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
# Axes' standalone backend first: it refuses a locked-out username or client before any password is
# checked, and (unlike AxesBackend) holds no sessions, so get_user() stays AccessControlledBackend's.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "accounts.backends.AccessControlledBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"

# Login lockouts (django-axes, failures kept in the database so every web process sees them): failed
# logins count per username and per client (accounts.client_address: the address behind
# TRUSTED_PROXIES, an IPv6 client's whole /64). LOGIN_FAILURE_LIMIT failures lock that username
# everywhere, and that client for every username, until LOGIN_LOCKOUT_MINUTES pass without another
# failure. The username lock is what stops a guesser who changes addresses; its price is that a
# stranger can keep a username locked, which `manage.py axes_reset_username NAME` lifts.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_CLIENT_IP_CALLABLE = "accounts.client_address.lockout_address"
AXES_LOCKOUT_CALLABLE = "accounts.views.login_locked_out"
# Lockouts need the failures only; a row for every successful login would be a log of addresses.
AXES_DISABLE_ACCESS_LOG = True
# A success must not wipe failures: one marketer logging in from an address would otherwise clear
# what that address ran up against another marketer's username.
AXES_RESET_ON_SUCCESS = False

SIGNUP_ENABLED = env_bool("SIGNUP_ENABLED", True)
# How long a sign-up's confirmation link works; an account still unconfirmed then is removed at the
# next sign-up, which frees its username and address.
SIGNUP_CONFIRM_MAX_AGE = int(os.environ.get("SIGNUP_CONFIRM_MAX_AGE", str(3 * 24 * 3600)))
# The anonymous account forms mail whatever address is typed: per hour, how many submissions one client
# (accounts.client_address.rate_limit_key) and one address may make, so they cannot be used to mail
# someone over and over, nor to try usernames and addresses in bulk. Counted in Django's cache.
SIGNUP_LIMIT_PER_IP = int(os.environ.get("SIGNUP_LIMIT_PER_IP", "10"))
SIGNUP_LIMIT_PER_ADDRESS = int(os.environ.get("SIGNUP_LIMIT_PER_ADDRESS", "3"))
PASSWORD_RESET_LIMIT_PER_IP = int(os.environ.get("PASSWORD_RESET_LIMIT_PER_IP", "10"))
PASSWORD_RESET_LIMIT_PER_ADDRESS = int(os.environ.get("PASSWORD_RESET_LIMIT_PER_ADDRESS", "3"))
ACCOUNT_FORMS_RATE_WINDOW = 3600

# The REST API's request limit per token: API_RATE_LIMIT requests in each window of
# API_RATE_WINDOW_SECONDS; past it, 429 with Retry-After.
API_RATE_LIMIT = int(os.environ.get("API_RATE_LIMIT", "600"))
API_RATE_WINDOW_SECONDS = int(os.environ.get("API_RATE_WINDOW_SECONDS", "60"))
# The largest request body read (Django refuses a larger one; the API answers 413): room for the API's
# 10,000 contacts a request with their attributes.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("DATA_UPLOAD_MAX_MEMORY_SIZE", str(10 * 1024 * 1024)))
DEFAULT_USER_TIMEZONE = "Asia/Kolkata"

# --- i18n / time ----------------------------------------------------------

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- static and media -----------------------------------------------------

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}

# Development serves static files straight from the apps (no collectstatic needed).
WHITENOISE_USE_FINDERS = not PRODUCTION
WHITENOISE_AUTOREFRESH = not PRODUCTION

# --- system mail (confirmation, password reset) ---------------------------
# Never a marketer's SMTP account: these settings are the operator's.

EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", str(SINK_PORT)))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = 30
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Campaign Manager <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- secrets at rest ------------------------------------------------------


def _field_encryption_keys():
    keys = env_list("FIELD_ENCRYPTION_KEYS")
    if keys:
        return keys
    # Development only (production refused to start above): one key kept in var/.
    from cryptography.fernet import Fernet

    key_file = VAR_DIR / "field_encryption.key"
    if not key_file.exists():
        key_file.write_bytes(Fernet.generate_key())
        key_file.chmod(0o600)
    return [key_file.read_text().strip()]


FIELD_ENCRYPTION_KEYS = _field_encryption_keys()

# --- SMTP accounts of marketers -------------------------------------------

# Off unless set: an account may not point at loopback, private or link-local addresses,
# nor at ports other than the mail ports. Off by default in every environment, so a
# deployment that forgets DJANGO_ENV still guards its network; `make run` (its demo account
# uses the local sink) and the tests set SMTP_ALLOW_PRIVATE_HOSTS=1.
SMTP_ALLOW_PRIVATE_HOSTS = env_bool("SMTP_ALLOW_PRIVATE_HOSTS", False)
SMTP_ALLOWED_PORTS = (25, 465, 587, 2525)
SMTP_TIMEOUT = int(os.environ.get("SMTP_TIMEOUT", "30"))
# An extra CA bundle to trust for SMTP TLS (a private CA); the system's CAs are always trusted.
SMTP_CA_FILE = os.environ.get("SMTP_CA_FILE", "")
# A bounce mailbox (sending.mailbox) goes through the same guard, on these ports (POP3, IMAP, IMAPS,
# POP3S), trusts the same SMTP_CA_FILE, and gives its server MAILBOX_TIMEOUT seconds per operation.
MAILBOX_ALLOWED_PORTS = (110, 143, 993, 995)
MAILBOX_TIMEOUT = int(os.environ.get("MAILBOX_TIMEOUT", "30"))
# The link check of a campaign (delivery.link_check) goes through the same guard: with
# SMTP_ALLOW_PRIVATE_HOSTS off, a link (and every redirect) may only reach public addresses, on these
# ports. Each request waits LINK_CHECK_TIMEOUT_SECONDS at most per connect and per read, a link
# follows LINK_CHECK_MAX_REDIRECTS redirects, LINK_CHECK_CONCURRENCY links are checked at once, at
# most LINK_CHECK_MAX_URLS distinct links per campaign, and a marketer may start a new check of a
# campaign LINK_CHECK_COOLDOWN_SECONDS after the last one at the earliest.
LINK_CHECK_ALLOWED_PORTS = (80, 443, 8080, 8443)
LINK_CHECK_TIMEOUT_SECONDS = float(os.environ.get("LINK_CHECK_TIMEOUT_SECONDS", "10"))
LINK_CHECK_MAX_REDIRECTS = int(os.environ.get("LINK_CHECK_MAX_REDIRECTS", "5"))
LINK_CHECK_CONCURRENCY = int(os.environ.get("LINK_CHECK_CONCURRENCY", "4"))
LINK_CHECK_MAX_URLS = int(os.environ.get("LINK_CHECK_MAX_URLS", "200"))
LINK_CHECK_COOLDOWN_SECONDS = float(os.environ.get("LINK_CHECK_COOLDOWN_SECONDS", "10"))
SMTP_SINK_DIR = Path(os.environ.get("SMTP_SINK_DIR", VAR_DIR / "sink"))
# "Check DNS" of an account's DKIM record: the system's resolver unless nameservers are named
# (addresses, queried at DKIM_DNS_PORT), and a short bound, since a person waits for the page.
DKIM_DNS_NAMESERVERS = env_list("DKIM_DNS_NAMESERVERS")
DKIM_DNS_PORT = int(os.environ.get("DKIM_DNS_PORT", "53"))
DKIM_DNS_TIMEOUT_SECONDS = float(os.environ.get("DKIM_DNS_TIMEOUT_SECONDS", "3"))

# --- sending engine -------------------------------------------------------

DISPATCH_INTERVAL_SECONDS = int(os.environ.get("DISPATCH_INTERVAL_SECONDS", "10"))
# A campaign's recipients are written in chunks of this many contacts, each chunk one short
# transaction; a start, an extend and each dispatcher tick write chunks for this long at most.
RECIPIENTS_CHUNK_SIZE = int(os.environ.get("RECIPIENTS_CHUNK_SIZE", "10000"))
RECIPIENTS_PREPARE_SECONDS = float(os.environ.get("RECIPIENTS_PREPARE_SECONDS", "2"))
# Throttled or transiently failed emails come back after these waits, then fail.
EMAIL_RETRY_LADDER = [int(s) for s in env_list("EMAIL_RETRY_LADDER", "30,60,3600")]
# An unexpected error on one email (a bug, a malformed address) is retried this many times in all,
# then the email fails with the error's text; the rest of its batch goes on.
EMAIL_ERROR_ATTEMPTS = int(os.environ.get("EMAIL_ERROR_ATTEMPTS", "3"))
# A claimed batch belongs to its worker this long from the claim or the worker's last renewal.
EMAIL_LEASE_SECONDS = int(os.environ.get("EMAIL_LEASE_SECONDS", "300"))
# How far apart the clocks of the hosts running beat and workers may be (NTP keeps them far closer).
EMAIL_LEASE_CLOCK_SKEW_SECONDS = int(os.environ.get("EMAIL_LEASE_CLOCK_SKEW_SECONDS", "5"))
# The lease fence (campaigns/lease.py) keeps SMTP_TIMEOUT + this skew at each end of a lease.
if EMAIL_LEASE_SECONDS < SMTP_TIMEOUT + EMAIL_LEASE_CLOCK_SKEW_SECONDS + 10:
    raise ImproperlyConfigured(
        f"EMAIL_LEASE_SECONDS ({EMAIL_LEASE_SECONDS}) must be at least 10 s more than SMTP_TIMEOUT + "
        f"EMAIL_LEASE_CLOCK_SKEW_SECONDS ({SMTP_TIMEOUT + EMAIL_LEASE_CLOCK_SKEW_SECONDS}): a worker begins "
        "no send later than that before its lease ends."
    )
# How long an account rests after a quota or authentication failure.
ACCOUNT_PAUSE_SECONDS = int(os.environ.get("ACCOUNT_PAUSE_SECONDS", "3600"))
# An account whose server cannot be reached rests this long, doubling with each failed try up to the cap.
ACCOUNT_BACKOFF_BASE_SECONDS = int(os.environ.get("ACCOUNT_BACKOFF_BASE_SECONDS", "30"))
ACCOUNT_BACKOFF_MAX_SECONDS = int(os.environ.get("ACCOUNT_BACKOFF_MAX_SECONDS", "1800"))
# A sender sleeps at most this long for its next pacing slot; a longer wait frees the
# worker and the rest of the batch continues in a task due when the slot comes.
MAX_PACING_WAIT_SECONDS = float(os.environ.get("MAX_PACING_WAIT_SECONDS", "1"))
# With PIPELINING, the next message's MAIL, RCPT and DATA go behind a content when the next slot
# is this close (seconds); 0 turns it off (one more round trip a message).
SMTP_ENVELOPE_AHEAD_SECONDS = float(os.environ.get("SMTP_ENVELOPE_AHEAD_SECONDS", "0.05"))
# Per-message results wait for PostgreSQL's disk flush only when this is on; see
# campaigns.ledger.ledger_commits for the trade.
EMAIL_RESULTS_SYNCHRONOUS_COMMIT = env_bool("EMAIL_RESULTS_SYNCHRONOUS_COMMIT", False)
MESSAGE_ID_DOMAIN = (
    os.environ.get("MESSAGE_ID_DOMAIN", "") or (SITE_URL.split("://", 1)[-1].split("/")[0].split(":")[0])
)
# The sender id ending every Feedback-ID header (Gmail's a:b:c:SenderId; here campaign:account:owner:this):
# letters, digits, dots, hyphens and underscores.
FEEDBACK_ID_SENDER = os.environ.get("FEEDBACK_ID_SENDER", "") or "campaigns"
# A personalised subject or body longer than this (characters, for one recipient) fails that
# recipient's message with the reason: every marketer's messages are built in the same workers.
RENDERED_SUBJECT_MAX_CHARS = int(os.environ.get("RENDERED_SUBJECT_MAX_CHARS", "2000"))
RENDERED_BODY_MAX_CHARS = int(os.environ.get("RENDERED_BODY_MAX_CHARS", str(2_000_000)))

# --- contact imports ------------------------------------------------------

# Larger uploads are refused before they are read (the upload itself streams to a temporary file).
IMPORT_MAX_UPLOAD_BYTES = int(os.environ.get("IMPORT_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)))
# Imports of more rows than this run in a Celery task with a progress bar; smaller ones in the request.
IMPORT_SYNC_MAX_ROWS = int(os.environ.get("IMPORT_SYNC_MAX_ROWS", "2000"))
# Rows read, checked and written per set-based step (and per progress update).
IMPORT_CHUNK_SIZE = int(os.environ.get("IMPORT_CHUNK_SIZE", "5000"))
# An uploaded file of more data rows is refused (manage.py import_contacts has no limit): the bound
# on a preview's and an import's work, whatever the file declares.
IMPORT_MAX_ROWS = int(os.environ.get("IMPORT_MAX_ROWS", "1000000"))
# The preview (a dry run of the whole file) runs in a Celery task stopped after this many seconds:
# a file that takes longer is refused, and no web worker ever spends its time on one.
IMPORT_PREVIEW_TIME_LIMIT_SECONDS = int(os.environ.get("IMPORT_PREVIEW_TIME_LIMIT_SECONDS", "300"))
# An uploaded file never confirmed is deleted after this many hours (the job expires): uploads hold
# personal data, kept no longer than the import needs them. Checked every 5 minutes (setup_schedules)
# and whenever the job's page is visited.
IMPORT_UNCONFIRMED_FILE_HOURS = float(os.environ.get("IMPORT_UNCONFIRMED_FILE_HOURS", "24"))
# The preview lists this many of the file's first rows (100 a page), each with its values as saved;
# every row is counted in its figures.
IMPORT_PREVIEW_ROWS = int(os.environ.get("IMPORT_PREVIEW_ROWS", "1000"))
# An .xlsx is a zip: one whose members would unpack to more than this is refused before it is read
# (a few compressed kilobytes can unpack to gigabytes).
IMPORT_XLSX_MAX_UNPACKED_BYTES = int(os.environ.get("IMPORT_XLSX_MAX_UNPACKED_BYTES", str(300 * 1024 * 1024)))
# django-import-export's own escaping only drops a leading "="; contacts.exports escapes every export.
IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT = False

# --- tracking and unsubscribe --------------------------------------------

# The mailto: of every List-Unsubscribe header; its subject carries the unsubscribe token.
# Route this mailbox to something that POSTs the token's URL (see docs/operations.md, "Unsubscribe by mail").
UNSUBSCRIBE_MAILTO = os.environ.get("UNSUBSCRIBE_MAILTO", "")
# The postal address in the footer of a marketer who has none of their own (CAN-SPAM asks for one in
# every message). Empty: a marketer without an address is warned on every page and cannot send until
# they add one.
DEFAULT_POSTAL_ADDRESS = os.environ.get("DEFAULT_POSTAL_ADDRESS", "").replace("\\n", "\n").strip()
# An open this soon after sending is a scanner at delivery, not a reader.
TRACKING_MACHINE_OPEN_SECONDS = int(os.environ.get("TRACKING_MACHINE_OPEN_SECONDS", "5"))
# An open or click repeated this soon (the same email, and link) records nothing, so one URL
# requested over and over cannot write rows without end; it still answers.
TRACKING_REPEAT_SECONDS = int(os.environ.get("TRACKING_REPEAT_SECONDS", "60"))
# An account's tracking domain (sending.tracking_domains) is checked by fetching a URL on it: the
# fetch waits this long (a TLS proxy may be getting the name's certificate meanwhile), and the URL's
# signed token works for this many seconds.
TRACKING_DOMAIN_CHECK_TIMEOUT_SECONDS = float(os.environ.get("TRACKING_DOMAIN_CHECK_TIMEOUT_SECONDS", "20"))
TRACKING_DOMAIN_CHECK_MAX_AGE = 600

# Delivery reports read from an account's bounce mailbox (bounces.services): a hard bounce or a
# complaint suppresses the contact at once; soft bounces (4.x.x, a full mailbox) only when
# BOUNCE_SOFT_LIMIT of them arrived within BOUNCE_SOFT_DAYS days.
BOUNCE_SOFT_LIMIT = int(os.environ.get("BOUNCE_SOFT_LIMIT", "3"))
BOUNCE_SOFT_DAYS = int(os.environ.get("BOUNCE_SOFT_DAYS", "7"))
# Every enabled bounce mailbox is read this often (setup_schedules; the interval is then edited in the
# admin's periodic tasks). One read of a mailbox at a time: a read still going after
# BOUNCE_READ_LOCK_SECONDS (a worker killed mid-read) no longer holds the next one back.
BOUNCE_READ_INTERVAL_SECONDS = int(os.environ.get("BOUNCE_READ_INTERVAL_SECONDS", "60"))
BOUNCE_READ_LOCK_SECONDS = int(os.environ.get("BOUNCE_READ_LOCK_SECONDS", "1800"))

# --- ESP webhooks (bounces.esp) -------------------------------------------

# Failed posts (an unknown URL, wrong credentials, a bad signature) one client may make in the
# window before every post of it is refused with 429 until the window ends.
ESP_WEBHOOK_FAILURES_PER_IP = int(os.environ.get("ESP_WEBHOOK_FAILURES_PER_IP", "20"))
ESP_WEBHOOK_FAILURE_WINDOW = 3600
# Where Amazon SNS's signing certificates and subscription confirmations may be fetched from: an
# https URL whose host (and port, if any) matches this in full. Tests point it at a local server.
SNS_HOST_PATTERN = os.environ.get("SNS_HOST_PATTERN", r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?")
# The CA bundle those fetches verify against; "" for the system's.
SNS_CA_FILE = os.environ.get("SNS_CA_FILE", "")
SNS_FETCH_TIMEOUT_SECONDS = 10

# --- Celery and cache -----------------------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        # Broadcasts (worker control) default to ./control in the working directory.
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_ENABLE_UTC = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# A task is acknowledged after it ran, so a killed worker's batch is redelivered;
# the database claims make the redelivery harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# The dispatcher's tick has a queue of its own, which every worker consumes beside the batches' queue
# (the default: a worker consumes every queue named here), so a tick is taken by the next worker
# that finishes a batch instead of waiting behind every batch a large campaign queued before it.
# The subscription forms' confirmation emails have one too, for the same reason: someone is waiting for it.
# So do the link checks of "Review and send": a marketer waits for them, and their requests (up to
# LINK_CHECK_TIMEOUT_SECONDS each) must never hold a worker a batch is waiting for behind a backlog.
# The bounce mailboxes' reads have one so that a worker kept from it (-Q celery,dispatch,confirmations,checks)
# never gives a batch's slot to a slow or large mailbox.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("celery"), Queue("dispatch"), Queue("confirmations"), Queue("checks"), Queue("bounces"))
CELERY_TASK_ROUTES = {
    "campaigns.dispatch": {"queue": "dispatch"},
    "campaigns.send_subscription_confirmation": {"queue": "confirmations"},
    "campaigns.check_links": {"queue": "checks"},
    "bounces.read_mailboxes": {"queue": "bounces"},
    "bounces.read_mailbox": {"queue": "bounces"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = int(os.environ.get("CELERY_WORKER_PREFETCH_MULTIPLIER", "1"))
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# --- editor ---------------------------------------------------------------

CKEDITOR_5_CONFIGS = {
    "default": {
        "licenseKey": "GPL",
        "toolbar": {
            "items": [
                "heading",
                "|",
                "bold",
                "italic",
                "underline",
                "link",
                "bulletedList",
                "numberedList",
                "blockQuote",
                "insertTable",
                "insertImage",
                "|",
                "sourceEditing",
                "undo",
                "redo",
            ],
        },
        # The widget's JS turns "/.../" strings into RegExps; an object here would match nothing, and the
        # editor would drop every class, style and layout attribute of pasted email HTML. What is saved is
        # sanitised by campaigns.html_hygiene (nh3) anyway.
        "htmlSupport": {"allow": [{"name": "/.*/", "attributes": True, "classes": True, "styles": True}]},
        # "Insert image" offers both: upload (campaigns.editor.image_upload) and insert by URL.
        "image": {
            "insert": {"integrations": ["upload", "url"]},
            # The file chooser's choice; the server checks the content (campaigns.services.images).
            "upload": {"types": ["png", "jpeg", "gif", "webp"]},
            "toolbar": ["imageTextAlternative", "|", "imageStyle:inline", "imageStyle:block", "|", "linkImage"],
        },
        "heading": {
            "options": [
                {"model": "paragraph", "title": "Paragraph", "class": "ck-heading_paragraph"},
                {"model": "heading1", "view": "h1", "title": "Heading 1", "class": "ck-heading_heading1"},
                {"model": "heading2", "view": "h2", "title": "Heading 2", "class": "ck-heading_heading2"},
                {"model": "heading3", "view": "h3", "title": "Heading 3", "class": "ck-heading_heading3"},
            ],
        },
    },
}
CKEDITOR_5_FILE_UPLOAD_PERMISSION = "staff"
# What django-ckeditor-5's file uploader offers (its image chooser reads CKEDITOR_5_CONFIGS' image.upload.types).
CKEDITOR_5_UPLOAD_FILE_TYPES = ["png", "jpeg", "gif", "webp"]
IMAGE_UPLOAD_MAX_BYTES = int(os.environ.get("IMAGE_UPLOAD_MAX_BYTES", str(5 * 1024 * 1024)))

# --- security -------------------------------------------------------------

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Scripts, styles, frames and fetches from our own origin only (Chart.js is vendored, our JS has no
# inline code). Inline styles stay allowed: the admin and CKEditor 5 set style attributes.
CONTENT_SECURITY_POLICY = os.environ.get("CONTENT_SECURITY_POLICY") or (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-src 'self'; "
    "object-src 'none'; base-uri 'self'"
)
# The campaign preview: the email's own images (any https URL) show in its sandboxed iframe.
CONTENT_SECURITY_POLICY_PREVIEW = CONTENT_SECURITY_POLICY.replace("img-src 'self' data:", "img-src 'self' data: https:")
# The campaign and template add/change pages: the body's images show in the editor as they will in the mail.
CONTENT_SECURITY_POLICY_EDITOR = CONTENT_SECURITY_POLICY_PREVIEW
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", str(365 * 24 * 3600)))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- logging --------------------------------------------------------------

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    # embedded_postgres logs each pg_ctl call and handle at INFO; its warnings and errors still show.
    # flufl.bounce logs each of its detectors it runs, for every message read, at INFO.
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "embedded_postgres": {"level": "WARNING"},
        "flufl.bounce": {"level": "WARNING"},
    },
}

# Public subscription forms (contacts.subscriptions): how long a confirmation link works, how many
# submissions an IP address and a list take per hour, and how often one address may be mailed.
SUBSCRIPTION_CONFIRM_MAX_AGE = int(os.environ.get("SUBSCRIPTION_CONFIRM_MAX_AGE", str(2 * 24 * 3600)))
SUBSCRIBE_LIMIT_PER_IP = int(os.environ.get("SUBSCRIBE_LIMIT_PER_IP", "10"))
SUBSCRIBE_LIMIT_PER_LIST = int(os.environ.get("SUBSCRIBE_LIMIT_PER_LIST", "200"))
SUBSCRIBE_RATE_WINDOW = 3600
SUBSCRIPTION_MAIL_INTERVAL = 3600
