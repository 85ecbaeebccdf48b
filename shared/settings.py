"""One typed settings class for every service, read from the environment (and `.env`) once."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA = "127.0.0.1:9092"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/recruiter"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """Every setting, its environment variable, and its default. The README lists them."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", description="ENVIRONMENT: production refuses development defaults."
    )
    kafka_bootstrap_servers: str = Field(
        DEFAULT_KAFKA, description="KAFKA_BOOTSTRAP_SERVERS: comma-separated host:port list."
    )
    kafka_fetch_max_wait_ms: int = Field(
        500,
        ge=0,
        le=10_000,
        description="KAFKA_FETCH_MAX_WAIT_MS: how long a consumer's fetch may wait on the broker "
        "for data where a caller waits. Apache Kafka answers as soon as data arrives, so this "
        "only bounds idle polling; Tansu answers when the wait is over, so the local stack sets "
        "5 there.",
    )
    kafka_background_fetch_max_wait_ms: int = Field(
        500,
        ge=0,
        le=10_000,
        description="KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS: the same for events nobody waits on "
        "synchronously (the gateway's workflow.run.changed consumer).",
    )
    kafka_topic_partitions: int = Field(
        3,
        ge=1,
        le=1_000,
        description="KAFKA_TOPIC_PARTITIONS: partitions of each event and command topic this "
        "project creates: a consumer group spreads over at most this many instances of a "
        "service. The local stack sets 1 on Tansu, which reads every partition on every fetch.",
    )
    kafka_enable_idempotence: bool = Field(
        True,
        description="KAFKA_ENABLE_IDEMPOTENCE: idempotent producers (no duplicates from a "
        "producer's own retries; implies acks=all). The local stack sets false on Tansu, which "
        "has none.",
    )
    kafka_session_timeout_ms: int = Field(
        10_000,
        ge=1_000,
        le=300_000,
        description="KAFKA_SESSION_TIMEOUT_MS: how long a consumer group waits for a silent "
        "member (a killed instance) before giving its partitions to the others.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (managed "
        "Kafka); applies to every producer, consumer and admin client.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512",
        description="KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with SASL_*).",
    )
    kafka_sasl_username: str | None = Field(
        None, description="KAFKA_SASL_USERNAME: the SASL login (required with SASL_*)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="KAFKA_SASL_PASSWORD: its password (required with SASL_*)."
    )
    kafka_ssl_ca_file: Path | None = Field(
        None,
        description="KAFKA_SSL_CA_FILE: a PEM file of CA certificates that signed the brokers' "
        "certificates (with SSL and SASL_SSL; unset: the system's CAs).",
    )

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> Settings:
        if self.kafka_security_protocol.startswith("SASL_") and not (
            self.kafka_sasl_username and self.kafka_sasl_password
        ):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol} needs "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if self.kafka_ssl_ca_file is not None and not self.kafka_ssl_ca_file.is_file():
            raise ValueError(f"KAFKA_SSL_CA_FILE={self.kafka_ssl_ca_file} is not a readable file")
        return self

    database_url: str = Field(
        DEFAULT_DATABASE_URL, description="DATABASE_URL: PostgreSQL DSN (postgresql://...)."
    )
    redis_url: str = Field(DEFAULT_REDIS_URL, description="REDIS_URL: redis://host:port/db.")
    gateway_host: str = Field("127.0.0.1", description="GATEWAY_HOST: address the gateway binds.")
    gateway_port: int = Field(8000, description="GATEWAY_PORT: port the gateway serves HTTP on.")
    request_timeout_seconds: float = Field(
        5.0,
        gt=0,
        description="REQUEST_TIMEOUT_SECONDS: gateway wait for a service reply (504 after).",
    )
    http_request_timeout_seconds: float = Field(
        30.0,
        ge=0,
        description="HTTP_REQUEST_TIMEOUT_SECONDS: the longest the gateway works on a request "
        "before its response starts, whatever it waits on (a service, PostgreSQL, Redis): 504 "
        "after. The model routes (inference, chat) get INFERENCE_TIMEOUT_SECONDS more; a "
        "stream, once started, is not cut (0: no limit).",
    )
    rate_limit_per_key_per_minute: int = Field(
        600,
        ge=0,
        description="RATE_LIMIT_PER_KEY_PER_MINUTE: requests an API key (or a web session, as "
        "its key) may make to the /api routes in any 60 s, every gateway worker and replica "
        "together (0: no limit).",
    )
    rate_limit_anonymous_per_minute: int = Field(
        120,
        ge=0,
        description="RATE_LIMIT_ANONYMOUS_PER_MINUTE: requests a client address may make in any "
        "60 s without a valid key: no key, a wrong or revoked one, web pages (0: no limit).",
    )
    rate_limit_public_per_minute: int = Field(
        60,
        ge=0,
        description="RATE_LIMIT_PUBLIC_PER_MINUTE: requests a client address may make in any "
        "60 s to each public route (open pixel, click redirect, unsubscribe page and POST, "
        "delivery-events webhook), which each cost a Kafka round trip (0: no limit).",
    )
    max_streams_per_key: int = Field(
        5,
        ge=0,
        description="MAX_STREAMS_PER_KEY: event streams (run events, campaign events, streamed "
        "chat and inference answers) one API key may hold open at once, every gateway worker "
        "together (0: no limit).",
    )
    trusted_proxies: str = Field(
        "",
        description="TRUSTED_PROXIES: comma-separated addresses or CIDR networks of the reverse "
        "proxies in front of the gateway; only from them is the first X-Forwarded-For hop taken "
        "as the client's address (empty: the peer's address, always).",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        for item in (i.strip() for i in value.split(",") if i.strip()):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(
                    f"TRUSTED_PROXIES: {item!r} is not an address or network (e.g. 10.0.0.0/8)"
                ) from exc
        return value

    api_key_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="API_KEY_CACHE_SECONDS: how long a verified key is trusted in memory "
        "(revocations and rotations reach every gateway worker at once over Redis pub/sub; "
        "while that channel is down, keys are not cached).",
    )
    heartbeat_file: str | None = Field(
        None,
        description="HEARTBEAT_FILE: a service touches this file every 10 s while its event loop "
        "runs (a liveness probe checks its age); unset: no file.",
    )
    web_session_seconds: int = Field(
        8 * 3600,
        ge=60,
        description="WEB_SESSION_SECONDS: a web app sign-in lasts this long after its last use.",
    )
    web_cookie_secure: bool = Field(
        False,
        description="WEB_COOKIE_SECURE: send the session cookie over HTTPS only (set it behind "
        "TLS; off for http://127.0.0.1).",
    )
    startup_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="STARTUP_TIMEOUT_SECONDS: how long to wait for Kafka/PostgreSQL/Redis.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP collector; unset means no export."
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65_535,
        description="METRICS_PORT: a service (intent, inference, workflow, campaign) serves "
        "Prometheus metrics on this port of every interface (0: no metrics server); the gateway "
        "serves GET /metrics on its own port instead.",
    )
    log_level: str = Field("INFO", description="LOG_LEVEL: Python logging level.")
    log_format: Literal["json", "text"] = Field(
        "json",
        description="LOG_FORMAT: json (one object a line, with trace_id and span_id) or text; "
        "`make run` sets text.",
    )
    intent_confidence_threshold: float = Field(
        0.6,
        ge=0,
        le=1,
        description="INTENT_CONFIDENCE_THRESHOLD: below it, ask instead of guessing.",
    )
    intent_model_fallback: bool = Field(
        True,
        description="INTENT_MODEL_FALLBACK: when a model is configured, ask it about messages the "
        "classifier is unsure of, before asking the user.",
    )
    intent_model_timeout_seconds: float = Field(
        3.0, gt=0, description="INTENT_MODEL_TIMEOUT_SECONDS: how long intent detection waits."
    )
    intent_vocabulary_dir: Path | None = Field(
        None, description="INTENT_VOCABULARY_DIR: a folder of extra vocabulary JSON files."
    )

    # Language models: any OpenAI-compatible endpoint, through the official SDK.
    openai_base_url: str | None = Field(
        None, description="OPENAI_BASE_URL: the endpoint (unset: api.openai.com if a key is set)."
    )
    openai_api_key: str | None = Field(None, description="OPENAI_API_KEY: the endpoint's key.")
    llm_model: str | None = Field(None, description="LLM_MODEL: the default model.")
    llm_fallback_models: str = Field(
        "", description="LLM_FALLBACK_MODELS: comma-separated models tried in order when one fails."
    )
    llm_allowed_models: str = Field(
        "",
        description="LLM_ALLOWED_MODELS: comma-separated models a request may choose "
        "(always includes LLM_MODEL and the fallbacks).",
    )
    llm_timeout_seconds: float = Field(
        30.0, gt=0, description="LLM_TIMEOUT_SECONDS: one model call's timeout."
    )
    llm_max_retries: int = Field(
        2, ge=0, le=10, description="LLM_MAX_RETRIES: retries with backoff on 429, 5xx, timeouts."
    )
    llm_temperature: float = Field(0.2, ge=0, le=2, description="LLM_TEMPERATURE: the default.")
    llm_max_tokens: int = Field(
        512, ge=1, description="LLM_MAX_TOKENS: default and upper bound of an answer's tokens."
    )
    llm_max_input_tokens: int = Field(
        8_000, ge=1, description="LLM_MAX_INPUT_TOKENS: refuse longer requests (estimated)."
    )
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description='LLM_PRICES: JSON {"model": [USD per 1M prompt tokens, per 1M completion '
        "tokens]}; models not listed cost 0.",
    )
    llm_cache_ttl_seconds: int = Field(
        86_400, ge=1, description="LLM_CACHE_TTL_SECONDS: how long an answer stays cached."
    )
    gateway_serves_cache_hits: bool = Field(
        True,
        description="GATEWAY_SERVES_CACHE_HITS: the gateway answers cache hits from Redis itself "
        "(no Kafka round trip); false sends every request to the inference service.",
    )
    inference_timeout_seconds: float = Field(
        120.0,
        gt=0,
        description="INFERENCE_TIMEOUT_SECONDS: gateway wait for an answer (504 after).",
    )

    @property
    def fallback_models(self) -> list[str]:
        return [m.strip() for m in self.llm_fallback_models.split(",") if m.strip()]

    @property
    def allowed_models(self) -> list[str]:
        listed = [m.strip() for m in self.llm_allowed_models.split(",") if m.strip()]
        ordered = [self.llm_model, *self.fallback_models, *listed]
        return list(dict.fromkeys(m for m in ordered if m))

    @property
    def llm_configured(self) -> bool:
        return bool(self.llm_model and (self.openai_base_url or self.openai_api_key))

    @field_validator("database_url")
    @classmethod
    def _postgres_scheme(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"DATABASE_URL must start with postgresql:// (for example {DEFAULT_DATABASE_URL})"
            )
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                f"REDIS_URL must start with redis:// (for example {DEFAULT_REDIS_URL})"
            )
        return value

    @property
    def kafka_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    # The workflow engine.
    workflow_definition_modules: str = Field(
        "",
        description="WORKFLOW_DEFINITION_MODULES: comma-separated Python modules that register "
        "more workflow definitions and actions (besides the built-in ones) when imported.",
    )
    workflow_timer_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="WORKFLOW_TIMER_POLL_SECONDS: how often the engine looks for due timers set "
        "by other instances (its own wake it at once).",
    )

    @property
    def definition_modules(self) -> list[str]:
        return [m.strip() for m in self.workflow_definition_modules.split(",") if m.strip()]

    # Campaign email: the SMTP relay, who we are, links in every email, and pacing.
    smtp_host: str = Field("127.0.0.1", description="SMTP_HOST: the relay campaign email goes to.")
    smtp_port: int = Field(1025, ge=1, le=65_535, description="SMTP_PORT: the relay's port.")
    smtp_username: str | None = Field(
        None, description="SMTP_USERNAME: login, if the relay needs one."
    )
    smtp_password: SecretStr | None = Field(
        None, description="SMTP_PASSWORD: the login's password."
    )
    smtp_starttls: bool = Field(
        False, description="SMTP_STARTTLS: upgrade the connection with STARTTLS (required if true)."
    )
    smtp_timeout_seconds: float = Field(
        10.0, gt=0, description="SMTP_TIMEOUT_SECONDS: connect and per-command timeout."
    )
    smtp_pool_size: int = Field(
        2, ge=1, le=50, description="SMTP_POOL_SIZE: SMTP connections kept open and reused."
    )
    send_batch_size: int = Field(
        10,
        ge=1,
        le=100,
        description="SEND_BATCH_SIZE: emails a sending worker claims, and then records, in one "
        "transaction each, when no per-email pacing applies (no daily cap, spacing, global or "
        "campaign rate). A process killed mid-batch leaves up to this many per worker as "
        "'outcome unknown' (failed, never resent). 1: one email at a time.",
    )
    sender_name: str = Field("Recruiting Team", description="SENDER_NAME: the From display name.")
    sender_email: str = Field(
        "recruiting@example.com",
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="SENDER_EMAIL: the From address; its domain names the Message-IDs.",
    )
    sender_company: str = Field("Example Recruiting Ltd", description="SENDER_COMPANY: who we are.")
    sender_postal_address: str = Field(
        "1 Example Street, 10115 Berlin, Germany",
        description="SENDER_POSTAL_ADDRESS: shown in every email's footer, as the law asks.",
    )
    # The GDPR Art. 14 notice in a campaign's first email (docs/privacy.md).
    privacy_controller: str | None = Field(
        None,
        description="PRIVACY_CONTROLLER: who is responsible for candidates' data, as the notice "
        "names them (unset: SENDER_COMPANY).",
    )
    privacy_contact_email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="PRIVACY_CONTACT_EMAIL: where candidates reach the controller about their "
        "data (unset: SENDER_EMAIL).",
    )
    privacy_dpo_email: str | None = Field(
        None,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="PRIVACY_DPO_EMAIL: the data protection officer's address, named in the "
        "notice when set.",
    )
    privacy_retention_months: int = Field(
        24,
        ge=1,
        le=120,
        description="PRIVACY_RETENTION_MONTHS: how long after the last contact a candidate's "
        "data is kept, as the notice says.",
    )
    privacy_supervisory_authority: str | None = Field(
        None,
        max_length=200,
        description="PRIVACY_SUPERVISORY_AUTHORITY: the data protection authority the notice "
        "names for complaints (unset: 'a supervisory authority', unnamed).",
    )
    privacy_notice_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="PRIVACY_NOTICE_URL: the full privacy notice, linked from the short one "
        "(optional).",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        pattern=r"^https?://[^/\s]+(/[^\s]*)?$",
        description="PUBLIC_BASE_URL: where recipients reach the gateway (unsubscribe links).",
    )
    unsubscribe_secret: SecretStr = Field(
        SecretStr("development-only-unsubscribe-secret-do-not-use"),
        description="UNSUBSCRIBE_SECRET: HMAC key of unsubscribe links (32+ characters; "
        "production must set it).",
    )
    unsubscribe_mailto: str | None = Field(
        None,
        description="UNSUBSCRIBE_MAILTO: an address for mailto: unsubscribes in List-Unsubscribe "
        "(unset: the one-click URL only).",
    )
    send_rate_per_second: float = Field(
        5.0,
        ge=0,
        description="SEND_RATE_PER_SECOND: emails a second, all campaigns and senders of every "
        "campaign-service process together, kept in Redis (0: no limit).",
    )
    campaign_send_rate_per_second: float = Field(
        1.0,
        ge=0,
        description="CAMPAIGN_SEND_RATE_PER_SECOND: emails a second per campaign (0: no limit; "
        "0.01 spaces emails 100 s apart).",
    )
    send_max_attempts: int = Field(
        5, ge=1, le=20, description="SEND_MAX_ATTEMPTS: tries per email before it fails."
    )
    send_retry_base_seconds: float = Field(
        60.0,
        gt=0,
        description="SEND_RETRY_BASE_SECONDS: first retry delay after a temporary SMTP failure "
        "(doubles each try, with jitter).",
    )
    send_retry_max_seconds: float = Field(
        3_600.0, gt=0, description="SEND_RETRY_MAX_SECONDS: the longest retry delay."
    )

    @model_validator(mode="after")
    def _production_sends_as_itself(self) -> Settings:
        """Real recipients must get a real sender, working links and an unforgeable token, so
        production refuses the development defaults instead of mailing them."""
        if self.environment != "production":
            return self
        fields = type(self).model_fields
        names = ("unsubscribe_secret", "public_base_url", "sender_email", "sender_postal_address")
        defaults = [name.upper() for name in names if getattr(self, name) == fields[name].default]
        if defaults:
            raise ValueError(
                f"ENVIRONMENT=production needs real values for {', '.join(defaults)} "
                "(the defaults are for development)"
            )
        if len(self.unsubscribe_secret.get_secret_value()) < 32:
            raise ValueError("UNSUBSCRIBE_SECRET must be at least 32 characters in production")
        return self

    # Candidate extraction for campaigns.
    campaign_contact_window_days: int = Field(
        90,
        ge=0,
        le=3_650,
        description="CAMPAIGN_CONTACT_WINDOW_DAYS: skip candidates emailed about the same job "
        "within this many days (0: no check).",
    )
    campaign_extraction_default_limit: int = Field(
        50,
        ge=1,
        description="CAMPAIGN_EXTRACTION_DEFAULT_LIMIT: candidates per campaign when the request "
        "names no number.",
    )
    campaign_extraction_max_limit: int = Field(
        500,
        ge=1,
        description="CAMPAIGN_EXTRACTION_MAX_LIMIT: the most candidates one campaign extracts, "
        "whatever the request says.",
    )

    # Sending approved campaign email (services/campaign/sender.py).
    send_poll_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="SEND_POLL_SECONDS: how often the sender looks for emails due for a retry "
        "(an email.approved event wakes it at once).",
    )
    send_stuck_after_seconds: float = Field(
        60.0,
        gt=0,
        description="SEND_STUCK_AFTER_SECONDS: an email 'sending' longer than this (and 3 SMTP "
        "timeouts) was left by a stopped sender; it is failed as 'outcome unknown', not resent.",
    )

    # Pacing shared by every campaign-service process (docs/email.md, "Pacing").
    send_window_days: str = Field(
        "mon-fri",
        pattern=r"^\s*(always|((mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?"
        r"\s*,\s*)*(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?)?\s*$",
        description="SEND_WINDOW_DAYS: the recipient's working days email may go on, e.g. "
        "mon-fri or sun-thu or mon,wed,fri, in their time zone; always (or empty): no sending "
        "window, any day and hour.",
    )
    send_window_start: str = Field(
        "09:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="SEND_WINDOW_START: when the sending window opens, recipient's local time.",
    )
    send_window_end: str = Field(
        "17:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="SEND_WINDOW_END: when it closes (exclusive), recipient's local time.",
    )
    sender_timezone: str = Field(
        "UTC",
        description="SENDER_TIMEZONE: the default sender identity's IANA zone: its day for the "
        "daily cap, and the window's zone for a recipient with no zone and no known city.",
    )
    send_daily_cap: int = Field(
        200,
        ge=0,
        description="SEND_DAILY_CAP: emails a sender identity sends a day (its own midnight), "
        "all processes together (0: no cap). An identity may set its own.",
    )
    send_spacing_seconds: float = Field(
        100.0,
        ge=0,
        description="SEND_SPACING_SECONDS: least time between two emails of one sender "
        "identity, all processes together (0: none). An identity may set its own.",
    )
    send_spacing_jitter_seconds: float = Field(
        20.0,
        ge=0,
        description="SEND_SPACING_JITTER_SECONDS: up to this much random time added to each "
        "spacing.",
    )
    send_contact_frequency_days: int = Field(
        30,
        ge=0,
        le=3_650,
        description="SEND_CONTACT_FREQUENCY_DAYS: one outreach (a campaign's first email) per "
        "candidate in this many days, whatever the job; a later one fails unsent and such "
        "candidates are not extracted (0: no cap; follow-ups never count).",
    )
    sender_identities_file: str | None = Field(
        None,
        description="SENDER_IDENTITIES_FILE: a JSON file of sender identities, one per recruiter "
        "mailbox (user, name, email, SMTP login with the password's environment variable, "
        "daily cap, spacing, time zone, signature); a campaign sends from the identity whose "
        "user created it, else from SENDER_NAME/SENDER_EMAIL over SMTP_*.",
    )

    @field_validator("sender_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"SENDER_TIMEZONE {value!r} is not an IANA zone (e.g. UTC)") from exc
        return value

    # Campaign monitoring: the inbound delivery-events webhook (services/campaign/monitoring.py).
    webhook_secret: SecretStr = Field(
        SecretStr("development-only-webhook-secret-do-not-use"),
        description="WEBHOOK_SECRET: the key of the X-Webhook-Signature HMAC that POST "
        "/api/webhooks/email-events checks, or the X-Webhook-Secret it must carry from providers "
        "that cannot sign (32+ characters; production must set it).",
    )
    webhook_tolerance_seconds: int = Field(
        300,
        ge=1,
        le=3_600,
        description="WEBHOOK_TOLERANCE_SECONDS: a signed webhook request whose timestamp is "
        "further than this from the gateway's clock (old or in the future) is refused (401).",
    )
    soft_bounce_limit: int = Field(
        2,
        ge=0,
        le=100,
        description="SOFT_BOUNCE_LIMIT: soft bounces reported for an address before it is "
        "suppressed (0: never for soft bounces).",
    )
    track_opens_and_clicks: bool = Field(
        True,
        description="TRACK_OPENS_AND_CLICKS: send campaign email with an HTML part whose links "
        "go through the click redirect and which loads the open pixel (false: plain text only).",
    )

    # Replies from the sender's mailbox (services/campaign/inbox.py): read over IMAP when set.
    imap_host: str | None = Field(
        None,
        description="IMAP_HOST: the sender mailbox's IMAP server; the campaign service polls it "
        "for replies, auto-replies and bounce reports (unset: no mailbox is read).",
    )
    imap_port: int = Field(993, ge=1, le=65_535, description="IMAP_PORT: the IMAP server's port.")
    imap_username: str | None = Field(None, description="IMAP_USERNAME: the mailbox's login.")
    imap_password: SecretStr | None = Field(None, description="IMAP_PASSWORD: its password.")
    imap_tls: bool = Field(
        True, description="IMAP_TLS: connect over TLS (IMAPS); false only for a local test server."
    )
    imap_folder: str = Field("INBOX", description="IMAP_FOLDER: the folder replies arrive in.")
    imap_poll_seconds: float = Field(
        60.0, gt=0, le=3_600, description="IMAP_POLL_SECONDS: how often the mailbox is read."
    )

    @model_validator(mode="after")
    def _production_webhook_secret(self) -> Settings:
        """Production refuses the development webhook secret: anyone could report bounces."""
        if self.environment != "production":
            return self
        secret = self.webhook_secret.get_secret_value()
        if secret == type(self).model_fields["webhook_secret"].default.get_secret_value():
            raise ValueError(
                "ENVIRONMENT=production needs a real value for WEBHOOK_SECRET "
                "(the default is for development)"
            )
        if len(secret) < 32:
            raise ValueError("WEBHOOK_SECRET must be at least 32 characters in production")
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
