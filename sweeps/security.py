"""Security of a sweep: TLS to the Dask cluster, storage URLs that keep their secrets, and the
environment a trial's child process gets.

TLS: `tls_security` builds the `distributed.security.Security` a client needs to reach a
`tls://` scheduler from the `--tls-ca-file/--tls-cert/--tls-key` options (distributed's own
names). Without them, `Security()` reads the Dask config (`distributed.comm.tls.ca-file`,
`distributed.comm.tls.client.cert|key`, or `DASK_DISTRIBUTED__COMM__TLS__...` variables).

Storage URLs: a password is never written to the run folder, logs or errors. `mask_url`
replaces it (and `password=`-like query values) by `***`. Users keep the secret out of files by
passing the URL in `DQN_SWEEP_STORAGE`, by a `${VAR}` reference inside the URL (expanded by
`expand_url` when the storage is opened; the reference itself is what gets recorded), or by the
database's own mechanisms (PGPASSWORD / ~/.pgpass for PostgreSQL, option files for MySQL).

Trial environment: a child's stderr tail becomes the trial's `fail_reason` (Optuna storage,
Parquet tables, HTML report), so the child gets an allowlist of the worker's variables
(`child_environment`), never all of them; `scrub_secrets` masks, as a second line of defence,
the worker's secret-looking values that still show up in a reason.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

MASK = "***"
STORAGE_ENV = "DQN_SWEEP_STORAGE"
SECRET_QUERY_KEYS = re.compile(r"pass(word|wd)?|pwd|secret|token|api[_-]?key|credentials?", re.IGNORECASE)
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SecurityError(ValueError):
    """TLS options are incomplete or name missing files; a storage secret cannot be resolved."""


# --- TLS ---------------------------------------------------------------------------------
def tls_security(ca_file: str | None, cert: str | None, key: str | None):
    """A `Security` from the three TLS options, or None to let the Dask config decide.

    `cert` and `ca_file` are required together; `key` may be omitted when `cert` holds both.
    Encryption is required: a `tcp://` scheduler address is then refused, not used in clear.
    """
    given = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    if not any(given.values()):
        return None
    missing = [name for name in ("--tls-ca-file", "--tls-cert") if not given[name]]
    if missing:
        raise SecurityError(f"{' and '.join(missing)} missing: TLS needs the cluster's CA file and a client "
                            "certificate (plus --tls-key unless the certificate file holds the key)")
    for name, path in given.items():
        if path and not Path(path).is_file():
            raise SecurityError(f"{name} {path}: no such file")
    from distributed.security import Security

    return Security(tls_ca_file=ca_file, tls_client_cert=cert, tls_client_key=key, require_encryption=True)


# --- storage URLs ------------------------------------------------------------------------
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


def scrub(text: str, *urls: str | None) -> str:
    """`text` with every secret of `urls` replaced by `***` (for error messages from drivers)."""
    for url in urls:
        for secret in secrets_of(url):
            text = text.replace(secret, MASK)
    return text


def expand_url(url: str) -> str:
    """Replace `${VAR}` references in a storage URL by the environment's values."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise SecurityError(f"storage URL {mask_url(url)} refers to ${{{name}}}, which is not set")
        return os.environ[name]

    return ENV_REFERENCE.sub(value, url)


def storage_for_run(given: str | None) -> str | None:
    """The storage of `dqn-sweep run`: `--storage`, else `$DQN_SWEEP_STORAGE`, else None (journal)."""
    return given or os.environ.get(STORAGE_ENV) or None


def storage_for_reading(given: str | None, recorded: str | None) -> str | None:
    """The storage of a run folder: `--storage`, else what `run.json` recorded (None: the
    folder's journal). A recorded URL whose password was masked needs the secret again: from
    `$DQN_SWEEP_STORAGE`, whose masked form must equal the record."""
    if given or recorded is None or MASK not in recorded:
        return given or recorded
    env = os.environ.get(STORAGE_ENV) or None
    if env and mask_url(env) == recorded:
        return env
    hint = f" ({STORAGE_ENV} holds another URL: {mask_url(env)})" if env else ""
    raise SecurityError(
        f"the run folder records storage {recorded} without its password{hint}; set {STORAGE_ENV} to the "
        "full URL or pass --storage (or give the password through the database's own config, e.g. PGPASSWORD)"
    )


def tls_error_message(scheduler: str, error: Exception) -> str:
    """What to do when a client cannot talk to `scheduler` for TLS reasons."""
    text = str(error)
    if "ssl_context" in text or "TLS" in text:
        return (f"the scheduler {scheduler} speaks TLS but no client certificate was given: pass "
                "--tls-ca-file, --tls-cert and --tls-key (or set distributed.comm.tls.* in the Dask config)")
    if "encryption required" in text:
        return (f"TLS is required but the scheduler address {scheduler} is not tls://; use the scheduler's "
                f"tls:// address ({text})")
    return f"cannot connect to the Dask scheduler at {scheduler} ({type(error).__name__}: {text})"


# --- a trial's environment ---------------------------------------------------------------
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
CHILD_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
    "PYTHONPATH", "PYTHONHASHSEED", "VIRTUAL_ENV",
})
# Families that tune TensorFlow, CUDA, the BLAS/OpenMP runtimes, and dqn-sweep itself.
CHILD_PREFIXES = ("LC_", "TF_", "XLA_", "CUDA_", "CUDNN_", "NVIDIA_", "NCCL_", "OMP_", "MKL_", "KMP_",
                  "OPENBLAS_", "KERAS_", "DQN_SWEEP_")
NEVER_TO_CHILD = frozenset({STORAGE_ENV})  # the storage URL and its password: trials never need it
TERRAFORM_PREFIXES = ("TF_VAR_", "TF_TOKEN_", "TF_CLI_")  # Terraform's TF_ variables, not TensorFlow's
SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH", re.IGNORECASE)
MIN_SECRET_LENGTH = 6  # shorter values would mask ordinary words


def child_environment(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """The allowlisted part of `environ`, plus the variables named in `extra` (`resources.env`);
    never `DQN_SWEEP_STORAGE`."""
    extra = set(extra) - NEVER_TO_CHILD
    return {name: value for name, value in environ.items() if name in extra or _allowlisted(name)}


def _allowlisted(name: str) -> bool:
    """A family prefix admits no secret-looking name (TF_HTTP_PASSWORD is Terraform's, not ours);
    a study passes one on purpose by naming it in `resources.env`."""
    return ((name in CHILD_NAMES or name.startswith(CHILD_PREFIXES))
            and not name.startswith(TERRAFORM_PREFIXES) and name not in NEVER_TO_CHILD
            and not SECRET_NAME.search(name))


def env_name_problem(name: object) -> str | None:
    """Why `name` cannot be passed to a trial through `resources.env`, or None if it can."""
    if not isinstance(name, str) or not ENV_NAME.fullmatch(name):
        return (f"{name!r} is not an environment variable name: use letters, digits and '_', "
                "not starting with a digit")
    if name in NEVER_TO_CHILD:
        return (f"{name} holds the storage URL and its password; trials never get it (the driver owns "
                "the storage); allowed: any other variable name")
    return None


def env_secrets(environ: Mapping[str, str]) -> list[str]:
    """Values in `environ` that must not appear in a trial's reason, longest first: those of
    secret-looking names (PASSWORD, TOKEN, KEY, ...) and `DQN_SWEEP_STORAGE`, and the passwords
    inside any URL value, when at least MIN_SECRET_LENGTH characters long."""
    found: set[str] = set()
    for name, value in environ.items():
        if name in NEVER_TO_CHILD or SECRET_NAME.search(name):
            found.add(value)
        if "://" in value:
            found.update(secrets_of(value))
    return sorted((s for s in found if len(s) >= MIN_SECRET_LENGTH), key=len, reverse=True)


def scrub_secrets(text: str, secrets: Iterable[str]) -> str:
    """`text` with every one of `secrets` replaced by `***` (longest first, so a secret that
    contains another is masked whole)."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
