"""Which model answered a decision: family, variant, version and source.

>>> Provenance.of("load", observations=0)
Provenance(family='load', variant='online', version='0', source='prior')
>>> Provenance.of("load", observations=12).source
'online'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = [
    "Provenance",
]


class Provenance(BaseModel):
    family: str = Field(description="model family: performance, resources, cache, load, risk, "
                                    "or context / workflow for rule-based decisions")
    variant: Literal["online", "batch", "rule"] = Field(description="which variant answered")
    version: str = Field(description="online: records learned; batch: registry version")
    source: Literal["online", "batch", "prior", "rule"] = Field(
        description="prior: nothing learned yet; rule: computed by fixed rules")

    @classmethod
    def of(cls, family: str, *, observations: int, learned: bool | None = None,
           variant: str = "online") -> Provenance:
        """An online model's provenance: its version is how many records it has learned."""
        learned = observations > 0 if learned is None else learned
        return cls(family=family, variant=variant, version=str(observations),  # type: ignore[arg-type]
                   source="online" if learned else "prior")
