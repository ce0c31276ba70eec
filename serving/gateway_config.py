"""The gateway's TOML config (DESIGN's execution layer contract).

>>> config = GatewayConfig.model_validate({
...     "db": "gw.db",
...     "upstream": [{"name": "time-a", "command": ["mcp-server-time"]},
...                  {"name": "time-b", "command": ["mcp-server-time"]}],
...     "route": [{"tool": "get_current_time", "providers": ["time-a", "time-b"],
...                "task_type": "time"}]})
>>> [u.name for u in config.upstream], config.route[0].task_type
(['time-a', 'time-b'], 'time')
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from predictor.data.store import Durability

__all__ = ["Cache", "GatewayConfig", "Otlp", "Route", "Upstream", "expand", "load_config"]


class Upstream(BaseModel):
    """One upstream MCP server: a stdio command or a streamable HTTP URL."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$",
                      description="becomes the telemetry `server`")
    command: list[str] | None = Field(default=None, min_length=1,
                                      description="stdio: the program and its arguments")
    url: str | None = Field(default=None, description="streamable HTTP: the server's MCP URL")
    env: dict[str, str] = Field(default_factory=dict,
                                description="environment of a stdio upstream (added to a few "
                                            "safe variables; stdio children inherit no others)")
    timeout_s: float = Field(default=30.0, gt=0, le=3600,
                             description="longest one call may take (the seed's 30 s)")
    cwd: Path | None = Field(default=None, description="working directory of a stdio upstream "
                             "(relative to the config file, created when missing; default: "
                             "the config file's directory)")
    cache_ttl_s: float | None = Field(default=None, ge=0, le=86_400, description="seconds a "
                                      "cached answer of this upstream's read-only tools stays "
                                      "fresh (default: the [cache] section's `ttl_s`)")

    @model_validator(mode="after")
    def _one_transport(self) -> Upstream:
        if (self.command is None) == (self.url is None):
            raise ValueError(f"upstream {self.name!r}: give exactly one of command and url")
        return self


class Route(BaseModel):
    """One logical tool that several upstreams provide."""

    model_config = ConfigDict(extra="forbid")

    tool: str = Field(min_length=1, max_length=200, description="the name clients call")
    providers: list[str] = Field(min_length=1, description="upstreams serving a tool of that name")
    task_type: str | None = Field(default=None, description="default: the tool name")

    @property
    def task(self) -> str:
        """The task type the select decision ranks providers for."""
        return self.task_type or self.tool


class Cache(BaseModel):
    """The response cache of read-only tools and its prefetching (``[cache]``)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(default=True, description="cache answers of tools an upstream "
                                                    "marks read-only (readOnlyHint)")
    max_entries: int = Field(default=1024, ge=1, le=1_000_000, description="answers kept")
    max_entry_kb: int = Field(default=256, ge=1, le=65_536,
                              description="larger answers are not cached")
    ttl_s: float = Field(default=0.0, ge=0, le=86_400,
                         description="seconds an answer stays fresh (serves calls on its own, "
                                     "and may be prefetched); past that it only serves as a "
                                     "degraded answer. Default 0: read-only is not unchanging "
                                     "(the current time, a file), so freshness is the user's "
                                     "call, per upstream with `cache_ttl_s`")
    prefetch_keys: int = Field(default=2, ge=0, le=100, description="after each call, at most "
                               "this many answers the preload decision predicts next are "
                               "fetched ahead (0: no prefetching)")
    prefetch_min_probability: float = Field(default=0.2, ge=0, le=1, description="a predicted "
                                            "key is prefetched only this likely or more")
    server: str = Field(default="predictor-cache", min_length=1, max_length=200,
                        description="telemetry `server` of calls the cache answered (they never "
                                    "reached an upstream, so they must not teach its latency)")


class Otlp(BaseModel):
    """Export every attempt as an OpenTelemetry span over OTLP/HTTP (``[otlp]``)."""

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field(min_length=1, max_length=2000, description="an OTLP/HTTP traces URL, "
                          "e.g. http://127.0.0.1:4318/v1/traces (a collector) or "
                          "http://127.0.0.1:8000/v1/traces (predictor serve)")
    service_name: str = Field(default="predictor-gateway", min_length=1, max_length=200)
    headers: dict[str, str] = Field(default_factory=dict, description="sent with each export "
                                    "(e.g. authorization = \"Bearer ${TOKEN}\")")
    timeout_s: float = Field(default=10.0, gt=0, le=300)


class GatewayConfig(BaseModel):
    """``predictor gateway --config FILE``."""

    model_config = ConfigDict(extra="forbid")

    db: Path = Field(default=Path("predictor.db"), description="event store the gateway "
                                                                "records every attempt into")
    durability: Durability = Field(
        default="commit", description="what the answer to a call waits for: 'commit', its "
        "attempts committed to the store (visible, and kept if the gateway crashes), on disk "
        "within fsync_interval_s; 'fsync', its attempts on disk (survives a crash of the "
        "machine too, at about one disk sync per call)")
    fsync_interval_s: float = Field(default=1.0, gt=0, le=60, description="with durability "
                                    "'commit', the longest a recorded attempt waits to reach "
                                    "the disk")
    learn_linger_s: float = Field(
        default=0.02, ge=0, le=1, description="how long the gateway's learner waits for "
        "more attempts after one is recorded, so that it learns them in runs (each call "
        "is one record, learned alone at about twice the cost per record) and holds the "
        "interpreter less often while calls are served; 0: learn each attempt at once")
    upstream: list[Upstream] = Field(min_length=1)
    route: list[Route] = Field(default_factory=list)
    cache: Cache = Field(default_factory=Cache)
    otlp: Otlp | None = Field(default=None, description="span export (off by default)")
    policy: Literal["served", "ewma", "round_robin"] = Field(
        default="served", description="how a route picks its provider: the served select "
        "decision, or a rule users run today (for comparison: 'ewma', the lowest moving "
        "average latency of successful calls, skipping a provider whose last call failed; "
        "'round_robin')")

    @model_validator(mode="after")
    def _known_providers(self) -> GatewayConfig:
        names = [u.name for u in self.upstream]
        if len(set(names)) != len(names):
            raise ValueError(f"upstream names repeat: {names}")
        for route in self.route:
            unknown = set(route.providers) - set(names)
            if unknown:
                raise ValueError(f"route {route.tool!r}: unknown providers {sorted(unknown)}")
        return self


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand(value: str, variables: Mapping[str, str]) -> str:
    """``value`` with each ``${NAME}`` replaced from ``variables``; an unknown name is an error.

    >>> expand("${UPSTREAMS}/bin/x", {"UPSTREAMS": "/opt/u"})
    '/opt/u/bin/x'
    """
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in variables:
            raise ValueError(f"${{{name}}} is not set")
        return variables[name]

    return _VARIABLE.sub(one, value)


def _expanded(raw: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(raw, str):
        return expand(raw, variables)
    if isinstance(raw, list):
        return [_expanded(item, variables) for item in raw]
    if isinstance(raw, dict):
        return {key: _expanded(item, variables) for key, item in raw.items()}
    return raw


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway TOML file.

    Strings may name environment variables as ``${NAME}``, and
    ``${CONFIG_DIR}`` (the file's folder). Relative ``db`` and ``cwd`` are
    relative to the file.
    """
    path = Path(path).resolve()
    variables = {**os.environ, "CONFIG_DIR": str(path.parent)}
    raw = tomllib.loads(path.read_text())
    for index, upstream in enumerate(raw.get("upstream", [])):
        try:
            raw["upstream"][index] = _expanded(upstream, variables)
        except ValueError as err:
            raise ValueError(f"upstream {upstream.get('name', index)!r}: {err}") from None
    if "otlp" in raw:
        try:
            raw["otlp"] = _expanded(raw["otlp"], variables)
        except ValueError as err:
            raise ValueError(f"otlp: {err}") from None
    config = GatewayConfig.model_validate(raw)
    if not config.db.is_absolute():
        config.db = path.parent / config.db
    for upstream in config.upstream:
        upstream.cwd = path.parent if upstream.cwd is None else path.parent / upstream.cwd
    return config
