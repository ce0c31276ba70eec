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

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GatewayConfig", "Route", "Upstream", "load_config"]


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


class GatewayConfig(BaseModel):
    """``predictor gateway --config FILE``."""

    model_config = ConfigDict(extra="forbid")

    db: Path = Field(default=Path("predictor.db"), description="event store the gateway "
                                                                "records every attempt into")
    upstream: list[Upstream] = Field(min_length=1)
    route: list[Route] = Field(default_factory=list)
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


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate a gateway TOML file (relative ``db`` is relative to the file)."""
    path = Path(path)
    config = GatewayConfig.model_validate(tomllib.loads(path.read_text()))
    if not config.db.is_absolute():
        config.db = path.parent / config.db
    return config
