"""Provider presets for SMTP accounts: host, port, security and sending limits.

Limits follow each provider's published numbers for an ordinary account at the
time of writing; a marketer can lower or raise them after choosing a preset.
"""

from typing import Literal, TypedDict


class Preset(TypedDict):
    label: str
    host: str
    port: int
    security: str
    max_per_minute: int
    max_per_hour: int
    max_per_day: int


PresetField = Literal["host", "port", "security", "max_per_minute", "max_per_hour", "max_per_day"]

PRESETS: dict[str, Preset] = {
    "gmail": {
        "label": "Gmail (personal)",
        "host": "smtp.gmail.com",
        "port": 587,
        "security": "starttls",
        # 500 recipients a day for a personal account.
        "max_per_minute": 20,
        "max_per_hour": 100,
        "max_per_day": 500,
    },
    "google_workspace": {
        "label": "Google Workspace",
        "host": "smtp.gmail.com",
        "port": 587,
        "security": "starttls",
        # 2,000 messages a day per user.
        "max_per_minute": 30,
        "max_per_hour": 500,
        "max_per_day": 2000,
    },
    "microsoft_365": {
        "label": "Microsoft 365 / Outlook",
        "host": "smtp.office365.com",
        "port": 587,
        "security": "starttls",
        # 30 messages a minute, 10,000 recipients a day.
        "max_per_minute": 30,
        "max_per_hour": 1800,
        "max_per_day": 10000,
    },
    "hostinger": {
        "label": "Hostinger Email",
        "host": "smtp.hostinger.com",
        "port": 465,
        "security": "ssl",
        # Business plans: up to 3,000 emails a day.
        "max_per_minute": 20,
        "max_per_hour": 300,
        "max_per_day": 3000,
    },
    "sendgrid": {
        "label": "SendGrid (user name: apikey)",
        "host": "smtp.sendgrid.net",
        "port": 587,
        "security": "starttls",
        "max_per_minute": 600,
        "max_per_hour": 30000,
        "max_per_day": 100000,
    },
    "amazon_ses": {
        "label": "Amazon SES (us-east-1; change the region in the host)",
        "host": "email-smtp.us-east-1.amazonaws.com",
        "port": 587,
        "security": "starttls",
        # A production account starts at 14 messages a second and 50,000 a day.
        "max_per_minute": 840,
        "max_per_hour": 50000,
        "max_per_day": 50000,
    },
}

PRESET_FIELDS: tuple[PresetField, ...] = ("host", "port", "security", "max_per_minute", "max_per_hour", "max_per_day")


def preset_choices() -> list[tuple[str, str]]:
    return [("", "— none: fill in by hand —")] + [(key, p["label"]) for key, p in PRESETS.items()]
