"""What counts as a secret in a sweep, and how it is masked: one home for both.

A storage URL's password (and `password=`-like query values) is never written to the run
folder, logs or errors: `mask_url` replaces it by `***`. Users keep the secret out of files by
passing the URL in `DQN_SWEEP_STORAGE`, by a `${VAR}` reference inside the URL (expanded when
the storage is opened, `sweeps.store.storage`; the reference itself is what gets recorded), or by
the database's own mechanisms (PGPASSWORD / ~/.pgpass for PostgreSQL, option files for MySQL).

A trial's child gets an allowlisted environment (`sweeps.worker.environment`); as a second line
of defence `scrub` masks the worker's secret-looking values (`env_secrets`) that still show up
in a failure reason, which goes to the Optuna storage, the tables and the report.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
STORAGE_ENV = "DQN_SWEEP_STORAGE"
SECRET_QUERY_KEYS = re.compile(r"pass(word|wd)?|pwd|secret|token|api[_-]?key|credentials?", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def _password_span(url: str) -> tuple[int, int] | None:
    """Start and end of the password in `scheme://user:password@host/...`, if any."""
    if "://" not in url:
        return None
    start = url.index("://") + 3
    at = url.rfind("@", start, _authority_end(url, start))
    colon = url.find(":", start, at) if at >= 0 else -1
    return (colon + 1, at) if colon >= 0 else None


def _authority_end(url: str, start: int) -> int:
    """End of `user:pass@host:port`: the first '/', '?' or '#' after the last '@' of it."""
    at = url.rfind("@", start)
    search_from = at + 1 if at >= 0 else start
    ends = [i for i in (url.find(c, search_from) for c in "/?#") if i >= 0]
    return min(ends) if ends else len(url)


def mask_url(url: str | None) -> str | None:
    """`url` with its password and secret-looking query values replaced by `***`.

    A password that is exactly a `${VAR}` reference is kept: it is no secret, and keeping it
    lets a run folder reopen the storage when VAR is set.
    """
    if not url:
        return url
    span = _password_span(url)
    if span and not ENV_REFERENCE.fullmatch(url[span[0]:span[1]]) and span[1] > span[0]:
        url = url[: span[0]] + MASK + url[span[1]:]
    head, sep, query = url.partition("?")
    if not sep:
        return url
    parts = []
    for item in query.split("&"):
        key, eq, value = item.partition("=")
        if eq and SECRET_QUERY_KEYS.fullmatch(key) and not ENV_REFERENCE.fullmatch(value):
            value = MASK
        parts.append(f"{key}{eq}{value}")
    return head + sep + "&".join(parts)


def secrets_of(url: str | None) -> list[str]:
    """The secret strings in `url` (raw and percent-decoded) that `mask_url` hides."""
    if not url:
        return []
    found = []
    span = _password_span(url)
    if span and span[1] > span[0]:
        found.append(url[span[0]:span[1]])
    query = urlsplit(url).query if "://" in url else url.partition("?")[2]
    found += [value for key, value in parse_qsl(query, keep_blank_values=False) if SECRET_QUERY_KEYS.fullmatch(key)]
    found += [unquote(s) for s in found]
    return sorted({s for s in found if s and not ENV_REFERENCE.fullmatch(s)}, key=len, reverse=True)


def env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values in `environ` that must not appear in a trial's reason, longest first: those of
    secret-looking names (PASSWORD, TOKEN, KEY, ...) and `DQN_SWEEP_STORAGE`, and the passwords
    inside any URL value, when at least MIN_SECRET_LENGTH characters long."""
    found: set[str] = set()
    for name, value in environ.items():
        if name == STORAGE_ENV or SECRET_NAME.search(name):
            found.add(value)
        if "://" in value:
            found.update(secrets_of(value))
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` replaced by `***` (longest first, so a secret that
    contains another is masked whole). `scrub(text, secrets_of(url))` for a storage URL's."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
