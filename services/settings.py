"""Settings: the one module that reads the environment.

Every knob casedesk has is a field here, with its default; README.md and
deploy/casedesk.env.example list the same variables.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar

import msgspec
import phonenumbers

from casedesk.domain.approval_policy import approval_limits
from casedesk.domain.clock_policies import policy_named

ProjectionMode = Literal["process", "in-process", "off"]
_PROJECTION_MODES: dict[str, ProjectionMode] = {
    "process": "process", "worker": "process",
    "in-process": "in-process", "inprocess": "in-process", "true": "in-process", "1": "in-process",
    "yes": "in-process", "on": "in-process",
    "off": "off", "false": "off", "0": "off", "no": "off",
}

# A breach list's share of an API process's time while agents work. Each card it opens costs
# PostgreSQL and the projection worker about as much CPU again as the intake's own, so its share
# decides how busy the two cores are: at 0.5 agents' read p99 was 3.4-5.3x quiet during a
# 40,000-line upload, at 0.25, with each task of the upload resting for its own slices, 2.3-3.0x
# (python -m tests.bench heavy_reads, issue 15).
BULK_SHARE = 0.25


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """What a casedesk process is configured with."""

    database_url: str | None = None
    database_read_url: str | None = None
    # Straight to the primary, never through PgBouncer in transaction mode: what needs
    # a session of its own (LISTEN, session advisory locks: migrations, projection workers).
    database_direct_url: str | None = None
    data_dir: Path = Path(".casedesk")
    host: str = "127.0.0.1"
    port: int = 8080
    token_secret: str = ""
    # Where the token secret came from, to say so (never the secret): the variable, or the file's path.
    token_secret_source: str = "CASEDESK_TOKEN_SECRET"
    pii_key: str = ""
    # Wraps each customer's data key (issue 21); never in the database. Empty: derived from the
    # PII key (CASEDESK_PII_KEY set without CASEDESK_MASTER_KEY, or Settings made by hand).
    master_key: str = ""
    # Personal data sealed under per-customer keys; False only for the bench's reference run.
    seal_personal_data: bool = True
    # The audit seal's key and where its signed heads go: both outside the database,
    # so a database writer can neither recompute the seal nor rewrite the heads.
    audit_key: str = ""
    audit_heads: Path | None = None
    log_format: str = "json"
    log_level: str = "info"
    pool_min: int = 2
    pool_max: int = 10
    # Where projections run: "process" (a worker child of serve, what the environment
    # defaults to), "in-process" (serve's own event loop; what tests build), "off".
    projections: ProjectionMode = "in-process"
    readiness_max_lag: int = 1000
    statement_cache: bool = True
    timezone: str = "UTC"
    # Slow clients (services/http/slow_clients.py): seconds for a request head, seconds a body
    # may go without a byte, connections one address may hold.
    header_timeout: float = 10.0
    body_idle_timeout: float = 30.0
    max_connections_per_ip: int = 256
    # The card processor (CONTRACT.md "Effects"). No URL: serve starts `casedesk processor-sim`
    # beside itself and points the sender at it (the embedded default).
    processor_url: str | None = None
    processor_user: str = "casedesk"
    processor_password: str = ""
    # Where serve runs the processor-instruction sender: "process" (a child, what the
    # environment defaults to), "in-process", "off" (what tests build: none).
    processor_instructions: ProjectionMode = "off"
    processor_timeout: float = 5.0
    processor_retry_max: float = 10.0  # longest pause between two attempts of one call
    # Webhooks (CONTRACT.md "Effects"). Where serve runs the sender: "process" (a child,
    # what the environment defaults to), "in-process", "off" (what tests build).
    webhooks: ProjectionMode = "off"
    webhook_allow_private: bool = False  # receivers on loopback/private ranges: local testing only
    webhook_retry_hours: float = 72.0  # how long one event is retried before the subscription is failing
    webhook_retry_first_wait: float = 1.0  # seconds before the first retry; doubling from there
    webhook_retry_max_wait: float = 3600.0  # longest pause between two attempts (also a failing one's probe)
    # The `casedesk webhooks` process's niceness (0-19): delivery is background work that may
    # lag at a peak; the API's requests get the cores first (issue 17's cost to POST note).
    webhook_nice: int = 10
    # The history process's niceness (0-19): an auditor's document waits for the agents' reads.
    history_nice: int = 10
    # Processes that fold a new version of the case files side by side while the old one serves
    # (projections/blue_green.py, services/rebuild_in_parts.py); 1: the builder folds alone.
    build_workers: int = 1
    webhook_peak_delay: float = 30.0  # seconds a peak may hold webhooks back (0: the sender never rests)
    # The share of the time a breach list's intake may take in an API process while agents are
    # working (0 < share <= 1): it rests the rest, so their reads are not slowed by it
    # (services/turn_taking.py); alone, it goes at full speed.
    bulk_share: float = BULK_SHARE
    # Where audit histories are made: "process" (a worker process the API starts, what the environment
    # defaults to) or "in-process" (what tests build).
    history: ProjectionMode = "in-process"
    # Which deadline rules the clocks follow (domain/clock_policies.py): jp or us.
    clock_policy: str = "jp"
    # Where a phone number written without a country code is (ISO 3166 code, for `phonenumbers`).
    phone_region: str = "JP"
    # Call verifications one IVR token may ask a minute (the phone system's whole traffic: 200/s is 12,000).
    ivr_token_rate: int = 15_000
    # Seconds after an agent's last presence heartbeat that they are no longer on the case (issue 19).
    presence_expiry: float = 30.0
    # Four eyes (issue 19): per currency, above how much a liability waiver or a provisional credit waits
    # for a supervisor's approval, e.g. "JPY:100000,USD:1000"; named currencies replace the defaults of
    # domain/approval_policy.py, the others keep them.
    approval_limit: str = ""

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def master_key_or_derived(self) -> str:
        return self.master_key or "derived from the PII key:" + self.pii_key

    @property
    def audit_heads_path(self) -> Path:
        return self.audit_heads or self.data_dir / "audit-heads.jsonl"


def _secret_in(data_dir: Path, name: str) -> str:
    """Read a generated secret from the data directory, creating it once."""
    path = data_dir / name
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(value)
    return value


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


class SettingsError(ValueError):
    """An environment variable holds a value casedesk cannot use."""


def _projection_mode(value: str | None, name: str = "CASEDESK_PROJECTIONS") -> ProjectionMode:
    """CASEDESK_PROJECTIONS: process (default), in-process, off; true/false as before mean in-process/off."""
    if value is None or not value.strip():
        return "process"
    mode = _PROJECTION_MODES.get(value.strip().lower())
    if mode is None:
        raise SettingsError(f"{name}={value!r}: expected process, in-process or off")
    return mode


def _history_mode(value: str | None) -> ProjectionMode:
    """CASEDESK_HISTORY: process (default) or in-process."""
    mode = _projection_mode(value, "CASEDESK_HISTORY")
    if mode == "off":
        raise SettingsError(f"CASEDESK_HISTORY={value!r}: expected process or in-process (history is always served)")
    return mode


_N = TypeVar("_N", int, float)


def _number(value: str | None, name: str, kind: Callable[[str], _N], default: _N, fits: Callable[[_N], bool],
            expected: str) -> _N:
    """A number setting: `default` when unset; one casedesk cannot use stops the process before it serves."""
    if value is None or not value.strip():
        return default
    try:
        number = kind(value)
    except ValueError:
        raise SettingsError(f"{name}={value!r}: expected {expected}") from None
    if not fits(number):  # (NaN fits no range)
        raise SettingsError(f"{name}={value!r}: expected {expected}")
    return number


def _share(value: str | None) -> float:
    """CASEDESK_BULK_SHARE: above 0, at most 1 (1: bulk work never rests); BULK_SHARE by default."""
    return _number(value, "CASEDESK_BULK_SHARE", float, BULK_SHARE, lambda share: 0.0 < share <= 1.0,
                   "a number above 0 and at most 1, e.g. 0.25")


def _niceness(value: str | None, name: str) -> int:
    """CASEDESK_WEBHOOK_NICE, CASEDESK_HISTORY_NICE: 0 (as the API) to 19 (only what the API leaves);
    10 by default."""
    return _number(value, name, int, 10, lambda nice: 0 <= nice <= 19, "a whole number from 0 to 19")


def _clock_policy(value: str | None) -> str:
    """CASEDESK_CLOCK_POLICY: jp (default) or us; anything else stops the process before it serves."""
    name = (value or "jp").strip().lower()
    try:
        policy_named(name)
    except ValueError as unknown:
        raise SettingsError(f"CASEDESK_CLOCK_POLICY: {unknown}") from None
    return name


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (or a given mapping, for tests)."""
    env = os.environ if environ is None else environ
    data_dir = Path(env.get("CASEDESK_DATA_DIR") or ".casedesk").resolve()
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        database_read_url=env.get("DATABASE_READ_URL") or None,
        database_direct_url=env.get("DATABASE_DIRECT_URL") or None,
        data_dir=data_dir,
        host=env.get("CASEDESK_HOST") or "127.0.0.1",
        port=int(env.get("CASEDESK_PORT") or 8080),
        token_secret=env.get("CASEDESK_TOKEN_SECRET") or _secret_in(data_dir, "token_secret"),
        token_secret_source=("CASEDESK_TOKEN_SECRET" if env.get("CASEDESK_TOKEN_SECRET")
                             else str(data_dir / "token_secret")),
        pii_key=env.get("CASEDESK_PII_KEY") or _secret_in(data_dir, "pii_key"),
        # Unset: derived from CASEDESK_PII_KEY when that is set (processes that share the PII key, as every
        # process of one deployment must, then share the master key too); else generated like the others.
        master_key=env.get("CASEDESK_MASTER_KEY") or ("" if env.get("CASEDESK_PII_KEY")
                                                       else _secret_in(data_dir, "master_key")),
        seal_personal_data=_flag(env.get("CASEDESK_SEAL_PERSONAL_DATA"), True),
        audit_key=env.get("CASEDESK_AUDIT_KEY") or _secret_in(data_dir, "audit_key"),
        audit_heads=Path(env["CASEDESK_AUDIT_HEADS"]).resolve() if env.get("CASEDESK_AUDIT_HEADS") else None,
        log_format=env.get("CASEDESK_LOG_FORMAT") or "json",
        log_level=env.get("CASEDESK_LOG_LEVEL") or "info",
        pool_min=int(env.get("CASEDESK_POOL_MIN") or 2),
        pool_max=int(env.get("CASEDESK_POOL_MAX") or 10),
        projections=_projection_mode(env.get("CASEDESK_PROJECTIONS")),
        readiness_max_lag=int(env.get("CASEDESK_READY_MAX_LAG") or 1000),
        statement_cache=_flag(env.get("CASEDESK_STATEMENT_CACHE"), True),
        timezone=env.get("CASEDESK_TIMEZONE") or "UTC",
        header_timeout=float(env.get("CASEDESK_HEADER_TIMEOUT") or 10.0),
        body_idle_timeout=float(env.get("CASEDESK_BODY_IDLE_TIMEOUT") or 30.0),
        max_connections_per_ip=int(env.get("CASEDESK_MAX_CONNECTIONS_PER_IP") or 256),
        processor_url=(env.get("CASEDESK_PROCESSOR_URL") or "").rstrip("/") or None,
        processor_user=env.get("CASEDESK_PROCESSOR_USER") or "casedesk",
        processor_password=env.get("CASEDESK_PROCESSOR_PASSWORD") or "",
        processor_instructions=_projection_mode(env.get("CASEDESK_PROCESSOR_INSTRUCTIONS"),
                                                "CASEDESK_PROCESSOR_INSTRUCTIONS"),
        processor_timeout=float(env.get("CASEDESK_PROCESSOR_TIMEOUT") or 5.0),
        processor_retry_max=float(env.get("CASEDESK_PROCESSOR_RETRY_MAX") or 10.0),
        webhooks=_projection_mode(env.get("CASEDESK_WEBHOOKS"), "CASEDESK_WEBHOOKS"),
        webhook_allow_private=_flag(env.get("CASEDESK_WEBHOOK_ALLOW_PRIVATE"), False),
        webhook_retry_hours=float(env.get("CASEDESK_WEBHOOK_RETRY_HOURS") or 72.0),
        webhook_retry_first_wait=float(env.get("CASEDESK_WEBHOOK_RETRY_FIRST_WAIT") or 1.0),
        webhook_retry_max_wait=float(env.get("CASEDESK_WEBHOOK_RETRY_MAX_WAIT") or 3600.0),
        webhook_nice=_niceness(env.get("CASEDESK_WEBHOOK_NICE"), "CASEDESK_WEBHOOK_NICE"),
        history_nice=_niceness(env.get("CASEDESK_HISTORY_NICE"), "CASEDESK_HISTORY_NICE"),
        build_workers=_number(env.get("CASEDESK_BUILD_WORKERS"), "CASEDESK_BUILD_WORKERS", int, 1,
                              lambda workers: 1 <= workers <= 64, "a whole number from 1 to 64"),
        webhook_peak_delay=_number(env.get("CASEDESK_WEBHOOK_PEAK_DELAY"), "CASEDESK_WEBHOOK_PEAK_DELAY", float, 30.0,
                                   lambda seconds: 0.0 <= seconds <= 3600.0, "seconds from 0 to 3600, e.g. 30"),
        bulk_share=_share(env.get("CASEDESK_BULK_SHARE")),
        history=_history_mode(env.get("CASEDESK_HISTORY")),
        clock_policy=_clock_policy(env.get("CASEDESK_CLOCK_POLICY")),
        phone_region=_phone_region(env.get("CASEDESK_PHONE_REGION")),
        ivr_token_rate=int(env.get("CASEDESK_IVR_TOKEN_RATE") or 15_000),
        presence_expiry=float(env.get("CASEDESK_PRESENCE_EXPIRY") or 30.0),
        approval_limit=_approval_limit(env.get("CASEDESK_APPROVAL_LIMIT")),
    )


def _approval_limit(value: str | None) -> str:
    """CASEDESK_APPROVAL_LIMIT: CURRENCY:AMOUNT pairs; one casedesk cannot read stops the process before it serves."""
    try:
        approval_limits(value)
    except ValueError as unusable:
        raise SettingsError(f"CASEDESK_APPROVAL_LIMIT={value!r}: {unusable}") from None
    return (value or "").strip()


def _phone_region(value: str | None) -> str:
    """CASEDESK_PHONE_REGION: a region `phonenumbers` knows (JP, US, GB…); default JP."""
    region = (value or "JP").strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(f"CASEDESK_PHONE_REGION={value!r}: not a region code such as JP or US")
    return region
