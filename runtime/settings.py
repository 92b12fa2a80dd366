"""One settings object, read from the environment at the edge and passed inward."""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from sqlalchemy.engine import make_url

SERVICE_ROLE = "vaultcraft_service"
"""The role services connect as when VAULTCRAFT_SERVICE_DATABASE_URL is unset (migration 0008)."""


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(env: dict[str, str], name: str) -> tuple[IPNetwork, ...]:
    """A comma-separated list of addresses or CIDR blocks (`10.0.0.0/8, ::1`)."""
    items = [item.strip() for item in (env.get(name) or "").split(",") if item.strip()]
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)
    except ValueError as exc:
        raise SystemExit(f"{name} must list IP addresses or CIDR blocks: {exc}") from exc


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def _int(env: dict[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def _int_between(env: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    value = _int(env, name, default)
    if not low <= value <= high:
        raise SystemExit(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """Every knob VaultCraft reads. Names follow the operator table of the API contract."""

    database_url: str | None
    redis_url: str | None
    data_dir: Path
    service_database_url: str | None = None
    audit_signing_key: str = field(default="", repr=False)
    audit_public_key: str = ""
    audit_retired_keys: str = ""  # public keys of earlier signing keys, comma-separated
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    metrics_port: int = 9191
    metrics_token: str = field(default="", repr=False)
    jwt_secret: str = field(default="", repr=False)  # empty: see `with_jwt_secret`
    token_ttl_s: int = 3600
    rate_limit_per_s: int = 10_000  # per organization; 0 turns rate limiting off
    rate_limit_burst: int = 20_000
    pending_rescue_after_s: int = 30
    ready_max_pending_age_s: int = 60
    allow_private_webhooks: bool = False
    posting_batch_size: int = 1000
    posting_concurrency: int = 2
    posting_kick_interval_ms: int = 15  # the dispatcher kicks at most this often
    posting_busy_interval_ms: int = 80  # a session's claims at capacity (crowded intake)
    intake_gather_ms: int = 2  # a small intake group waits this long for more under a stream
    fair_share: int = 100  # most transfers of one organization in a batch shared with others
    reconcile_interval_s: int = 60
    settle_interval_s: int = 60
    rescue_interval_s: int = 5
    hold_default_expires_s: int = 7 * 86_400
    log_format: str = "auto"
    bcrypt_rounds: int = 12  # cost of password hashes; tests lower it to 4
    signup_limit: int = 10  # signups per client address per 15 minutes
    trusted_proxies: tuple[IPNetwork, ...] = ()  # peers whose X-Forwarded-For is believed
    webhook_timeout_ms: int = 5000
    webhook_max_attempts: int = 10
    webhook_backoff_base_ms: int = 10_000
    webhook_backoff_max_ms: int = 3_600_000
    webhook_rescue_after_s: int = 300
    outbox_batch_size: int = 500
    outbox_lease_s: int = 30
    outbox_rest_ms: int = 20  # the outbox relay rests this long after a round
    event_stream_maxlen: int = 1_000_000
    broker_url: str | None = None  # amqp://... selects RabbitMQ; unset, the Redis broker
    events_amqp_url: str | None = None  # also publish relayed events to RabbitMQ

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("VAULTCRAFT_DATA_DIR") or ".vaultcraft").resolve()
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            data_dir=data_dir,
            service_database_url=env.get("VAULTCRAFT_SERVICE_DATABASE_URL") or None,
            audit_signing_key=env.get("VAULTCRAFT_AUDIT_SIGNING_KEY") or "",
            audit_public_key=env.get("VAULTCRAFT_AUDIT_PUBLIC_KEY") or "",
            audit_retired_keys=env.get("VAULTCRAFT_AUDIT_RETIRED_KEYS") or "",
            http_host=env.get("VAULTCRAFT_HTTP_HOST") or "127.0.0.1",
            http_port=_int(env, "VAULTCRAFT_HTTP_PORT", 8000),
            metrics_port=_int(env, "VAULTCRAFT_METRICS_PORT", 9191),
            metrics_token=env.get("VAULTCRAFT_METRICS_TOKEN") or "",
            jwt_secret=env.get("VAULTCRAFT_JWT_SECRET") or "",
            token_ttl_s=_int(env, "VAULTCRAFT_TOKEN_TTL_S", 3600),
            rate_limit_per_s=_int_between(env, "VAULTCRAFT_RATE_LIMIT_PER_S", 10_000, 0, 1_000_000),
            rate_limit_burst=_int_between(
                env, "VAULTCRAFT_RATE_LIMIT_BURST", 20_000, 1, 10_000_000
            ),
            pending_rescue_after_s=_int(env, "VAULTCRAFT_PENDING_RESCUE_AFTER_S", 30),
            ready_max_pending_age_s=_int_between(
                env, "VAULTCRAFT_READY_MAX_PENDING_AGE_S", 60, 1, 86_400
            ),
            allow_private_webhooks=_flag(env.get("VAULTCRAFT_ALLOW_PRIVATE_WEBHOOKS")),
            posting_batch_size=_int(env, "VAULTCRAFT_POSTING_BATCH_SIZE", 1000),
            posting_concurrency=_int_between(env, "VAULTCRAFT_POSTING_CONCURRENCY", 2, 1, 64),
            posting_kick_interval_ms=_int_between(
                env, "VAULTCRAFT_POSTING_KICK_INTERVAL_MS", 15, 0, 1000
            ),
            posting_busy_interval_ms=_int_between(
                env, "VAULTCRAFT_POSTING_BUSY_INTERVAL_MS", 80, 0, 1000
            ),
            intake_gather_ms=_int_between(env, "VAULTCRAFT_INTAKE_GATHER_MS", 2, 0, 100),
            fair_share=_int_between(env, "VAULTCRAFT_FAIR_SHARE", 100, 1, 10_000),
            reconcile_interval_s=_int(env, "VAULTCRAFT_RECONCILE_INTERVAL_S", 60),
            settle_interval_s=_int(env, "VAULTCRAFT_SETTLE_INTERVAL_S", 60),
            rescue_interval_s=_int(env, "VAULTCRAFT_RESCUE_INTERVAL_S", 5),
            hold_default_expires_s=_int_between(
                env, "VAULTCRAFT_HOLD_DEFAULT_EXPIRES_S", 7 * 86_400, 1, 30 * 86_400
            ),
            log_format=env.get("VAULTCRAFT_LOG_FORMAT") or "auto",
            bcrypt_rounds=_int_between(env, "VAULTCRAFT_BCRYPT_ROUNDS", 12, 4, 31),
            signup_limit=_int_between(env, "VAULTCRAFT_SIGNUP_LIMIT", 10, 1, 1_000_000),
            trusted_proxies=_networks(env, "VAULTCRAFT_TRUSTED_PROXIES"),
            webhook_timeout_ms=_int_between(env, "VAULTCRAFT_WEBHOOK_TIMEOUT_MS", 5000, 1, 60_000),
            webhook_max_attempts=_int_between(env, "VAULTCRAFT_WEBHOOK_MAX_ATTEMPTS", 10, 8, 50),
            webhook_backoff_base_ms=_int_between(
                env, "VAULTCRAFT_WEBHOOK_BACKOFF_BASE_MS", 10_000, 1, 86_400_000
            ),
            webhook_backoff_max_ms=_int_between(
                env, "VAULTCRAFT_WEBHOOK_BACKOFF_MAX_MS", 3_600_000, 1, 86_400_000
            ),
            webhook_rescue_after_s=_int_between(
                env, "VAULTCRAFT_WEBHOOK_RESCUE_AFTER_S", 300, 1, 86_400
            ),
            outbox_batch_size=_int_between(env, "VAULTCRAFT_OUTBOX_BATCH_SIZE", 500, 1, 10_000),
            outbox_lease_s=_int_between(env, "VAULTCRAFT_OUTBOX_LEASE_S", 30, 1, 3600),
            outbox_rest_ms=_int_between(env, "VAULTCRAFT_OUTBOX_REST_MS", 20, 0, 1000),
            event_stream_maxlen=_int_between(
                env, "VAULTCRAFT_EVENT_STREAM_MAXLEN", 1_000_000, 1000, 1_000_000_000
            ),
            broker_url=_broker_url(env.get("BROKER_URL")),
            events_amqp_url=_amqp_url(env, "VAULTCRAFT_EVENTS_AMQP_URL"),
        )

    def with_jwt_secret(self) -> Settings:
        """These settings with the token key resolved: `VAULTCRAFT_JWT_SECRET`, else the key
        kept in the data dir (generated by the first process that needs it). Only the gateway
        signs tokens and cursors, so only it resolves the key: `verify`, `reconcile` and the
        other commands never write it."""
        if self.jwt_secret:
            return self
        return replace(self, jwt_secret=_stored_secret(self.data_dir))

    @property
    def sqlalchemy_url(self) -> str:
        """Where services connect (as the service role), in SQLAlchemy's psycopg 3 form."""
        return to_sqlalchemy_url(service_url(self.owner_sqlalchemy_url, self.service_database_url))

    @property
    def owner_sqlalchemy_url(self) -> str:
        """DATABASE_URL itself: the schema owner, which only migrations use."""
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set and no embedded server was started")
        return to_sqlalchemy_url(self.database_url)


BROKER_SCHEMES = ("redis://", "rediss://", "unix://", "amqp://", "amqps://")


def _broker_url(raw: str | None) -> str | None:
    if not raw:
        return None
    if not raw.startswith(BROKER_SCHEMES):
        raise SystemExit(f"BROKER_URL must start with one of {', '.join(BROKER_SCHEMES)}")
    return raw


def _amqp_url(env: dict[str, str], name: str) -> str | None:
    raw = env.get(name) or None
    if raw is not None and not raw.startswith(("amqp://", "amqps://")):
        raise SystemExit(f"{name} must be an amqp:// or amqps:// URL")
    return raw


def is_amqp(url: str) -> bool:
    return url.startswith(("amqp://", "amqps://"))


SERVICE_SESSION_OPTIONS = "-c jit=off"
"""Server settings of every service connection. No JIT: the services run short statements,
and a statement whose estimate grows with a table (a backlog read after a cursor, a count
of waiting transfers) would otherwise compile for 100-400 ms to run in a millisecond."""


def service_url(owner_url: str, given: str | None = None) -> str:
    """The service role's URL: `given` (VAULTCRAFT_SERVICE_DATABASE_URL) if set, else the
    owner's URL with the user swapped for SERVICE_ROLE and no password (a server with
    password authentication then needs VAULTCRAFT_SERVICE_DATABASE_URL). Either way with
    `SERVICE_SESSION_OPTIONS` after any `options` the URL gives."""
    url = make_url(to_sqlalchemy_url(given or owner_url))
    if not given:
        url = url._replace(username=SERVICE_ROLE, password=None)  # `set` skips a None
    options = url.query.get("options")
    if isinstance(options, tuple):
        options = " ".join(options)
    if not options or SERVICE_SESSION_OPTIONS not in options:
        merged = f"{options} {SERVICE_SESSION_OPTIONS}" if options else SERVICE_SESSION_OPTIONS
        url = url.update_query_dict({"options": merged})
    return url.render_as_string(hide_password=False)


def to_sqlalchemy_url(url: str) -> str:
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def to_psycopg_url(url: str) -> str:
    """The database URL as libpq/psycopg take it: no SQLAlchemy driver name, and its query
    quoted as libpq reads it (a space as `%20`: libpq keeps a `+` as it is)."""
    base, _, query = to_sqlalchemy_url(url).partition("?")
    base = base.replace("postgresql+psycopg://", "postgresql://", 1)
    if not query:
        return base
    return f"{base}?{urlencode(parse_qsl(query, keep_blank_values=True), quote_via=quote)}"


def _stored_secret(data_dir: Path) -> str:
    """Generate the JWT key once and keep it in the data dir, so restarts keep tokens valid."""
    return stored_secret(data_dir, "jwt_secret", lambda: secrets.token_urlsafe(48))


def stored_secret(data_dir: Path, name: str, make: Callable[[], str]) -> str:
    """The secret kept in `data_dir/name`, made by `make` by the first process that asks."""
    path = data_dir / name
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = data_dir / f".{name}.{os.getpid()}"
    tmp.write_text(make())
    tmp.chmod(0o600)
    try:
        os.link(tmp, path)  # atomic: the first process to link wins, the others read its key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_text().strip()
