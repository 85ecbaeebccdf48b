"""One typed settings class for every service, read from the environment (and `.env`) once."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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
        5,
        ge=0,
        le=10_000,
        description="KAFKA_FETCH_MAX_WAIT_MS: a consumer's fetch wait where a caller waits "
        "(5 suits Tansu; Apache Kafka answers early, so 500 is fine there).",
    )
    kafka_background_fetch_max_wait_ms: int = Field(
        100,
        ge=0,
        le=10_000,
        description="KAFKA_BACKGROUND_FETCH_MAX_WAIT_MS: the same for events nobody waits on.",
    )
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
    api_key_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="API_KEY_CACHE_SECONDS: how long a verified key is trusted in memory.",
    )
    startup_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="STARTUP_TIMEOUT_SECONDS: how long to wait for Kafka/PostgreSQL/Redis.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTEL_EXPORTER_OTLP_ENDPOINT: OTLP/HTTP collector; unset means no export."
    )
    log_level: str = Field("INFO", description="LOG_LEVEL: Python logging level.")
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
