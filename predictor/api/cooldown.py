"""Request and answer of the cooldown decision (light: pydantic only)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from predictor.api.base import MAX_EPOCH_S, Name, RequestModel
from predictor.api.provenance import Provenance

__all__ = ["CooldownRequest", "CooldownResponse", "ServerCooldown"]


class CooldownRequest(RequestModel):
    """Which of these servers to keep out of routing now, and until when."""

    servers: list[Name] = Field(min_length=1, max_length=1000,
                               description="the servers to check")
    now: float | None = Field(default=None, ge=0, le=MAX_EPOCH_S,
                              description="epoch seconds; default: the latest telemetry time")


class ServerCooldown(BaseModel):
    server: str
    cooling_down: bool = Field(description="keep this server out of routing until `until`")
    until: float | None = Field(description="epoch seconds when the cooldown ends")
    remaining_s: float = Field(description="seconds of cooldown left at `now` (0 if none)")
    consecutive_failures: int = Field(description="failures since the server's last success")
    allowed_fails: int = Field(description="consecutive failures that start a cooldown")
    cooldown_s: float = Field(description="how long a cooldown lasts for this server: the "
                                          "median of its past outages once learned")
    source: Literal["prior", "online"] = Field(
        description="online: cooldown_s learned from this server's (or all servers') outages")


class CooldownResponse(BaseModel):
    servers: list[ServerCooldown]
    now: float | None = Field(description="the time the answer is for (epoch s)")
    source: Literal["prior", "online"]
    model: Provenance
