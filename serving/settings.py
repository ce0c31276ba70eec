"""Service settings: environment variables ``PREDICTOR_*`` and an optional file.

The file is JSON or TOML, named by ``PREDICTOR_CONFIG`` (or passed to
:class:`Settings` as ``_config_file``); environment variables override it,
and keyword arguments override both.

>>> Settings(port=9000).host, Settings(port=9000).port
('127.0.0.1', 9000)
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from predictor.data.store import Durability

__all__ = ["Settings"]


class _ConfigFileSource(PydanticBaseSettingsSource):
    """Values from the JSON or TOML file named by ``PREDICTOR_CONFIG``."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        name = os.environ.get("PREDICTOR_CONFIG")
        if not name:
            return {}
        path = Path(name)
        text = path.read_text()
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a table of settings")
        return data


class Settings(BaseSettings):
    """Everything ``predictor serve`` and ``predictor mcp`` can be told."""

    model_config = SettingsConfigDict(env_prefix="PREDICTOR_", extra="forbid")

    host: str = Field(default="127.0.0.1", description="address to bind; loopback unless told")
    port: int = Field(default=8000, ge=0, le=65535)
    db: Path | str = Field(default=Path("predictor.db"), description="event store: a SQLite "
                           "file (or sqlite:///path; shared by the processes of one machine), "
                           "or a postgresql:// URL (shared by replicas and learners anywhere)")
    role: Literal["all", "learner", "replica"] = Field(
        default="all", description="all: ingest, learn and answer (one process); learner: "
        "learn from the shared store and publish the state (one elected, others stand by); "
        "replica: ingest into the shared store and answer from the published state. On a "
        "SQLite store the roles are processes of one machine (the learner learns on a core "
        "of its own, never starved by ingestion); on PostgreSQL, of any machines")
    durability: Durability = Field(
        default="fsync", description="what an ingestion's reply waits for: 'fsync', its "
        "records on disk; 'commit', its records committed (visible, and safe from a crash of "
        "this process), on disk within fsync_interval_s (PostgreSQL: synchronous_commit off)")
    fsync_interval_s: float = Field(default=1.0, gt=0, le=60, description="with "
                                    "durability 'commit', the longest a committed record "
                                    "waits to reach the disk (SQLite)")
    sync_interval_s: float = Field(default=5.0, gt=0, le=3600, description="how often a "
                                   "learner publishes its state and a replica loads the newest")
    learn_linger_s: float = Field(
        default=0.0, ge=0, le=1, description="how long the learner waits for more records "
        "after a batch arrives, so that records ingested one at a time are learned in runs "
        "(about half the cost per record); 0: learn each batch at once")
    state_dir: Path = Field(default=Path("predictor-state"),
                            description="online model checkpoints")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking URI; default sqlite:///mlflow.db when present")
    load_champions: bool = Field(default=True,
                                 description="load the registry's champions at start")
    checkpoint_interval_s: float = Field(default=60.0, gt=0)
    online_registry: bool = Field(
        default=True, description="register online checkpoints in the MLflow registry as "
        "predictor-<family>-online (on a schedule and at stop), and resume from the newest "
        "when the state folder has none")
    online_registry_interval_s: float = Field(default=3600.0, gt=0)
    queue_max_records: int = Field(default=200_000, ge=1,
                                   description="records accepted but not yet learned, at most")
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    auth: Literal["writes", "all"] = Field(
        default="writes", description="what the api_token guards: 'writes' (ingestion, "
        "reload, /mcp) or 'all' (every /v1 route and /mcp; /healthz, /readyz and /metrics "
        "stay open for probes and scrapers)")
    api_token: SecretStr | None = Field(default=None,
                                        description="bearer token for ingestion, reload and MCP")
    capabilities: dict[str, list[str]] = Field(
        default_factory=dict, description="server -> task types it declares it serves")
    server_map: dict[str, str] = Field(
        default_factory=dict, description="OTLP server.address / service.name -> server id")
    future_tolerance_s: float = Field(
        default=300.0, ge=0, le=86_400.0 * 365,
        description="a record starting further than this past the service's clock is from "
        "the future: a wrong clock or a forged record; it would move every 'now' for good")
    future_policy: Literal["reject", "clamp"] = Field(
        default="reject", description="what to do with a record from the future: reject it "
        "(named, field ts) or clamp its ts to the service's clock")
    preload_max_keys: int = Field(
        default=250_000, ge=1_000, le=100_000_000,
        description="cache keys the preload decision remembers (counts and successors, about "
        "1.7 KB each in memory); past it the least accessed half is forgotten: the bound on "
        "the service's memory for a stream of ever new keys")
    seed: int = 0
    log_level: str = "INFO"
    access_log: bool = False

    @field_validator("db", mode="before")
    @classmethod
    def _store_target(cls, value: object) -> object:
        """A URL stays a string (a Path would fold its ``//``); anything else is a path."""
        if isinstance(value, str) and not value.startswith(("postgresql://", "postgres://")):
            return Path(value.removeprefix("sqlite:///"))
        return value

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _ConfigFileSource(settings_cls),
                file_secret_settings)
