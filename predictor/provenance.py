"""Which model answered a decision: family, variant, version and source.

>>> Provenance.of("load", observations=0)
Provenance(family='load', variant='online', version='0', source='prior')
>>> Provenance.of("load", observations=12).source
'online'
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

__all__ = ["Provenance"]


class Provenance(BaseModel):
    family: Literal["performance", "resources", "cache", "load", "risk", "context"]
    variant: Literal["online", "batch", "rule"]
    version: str
    source: Literal["online", "batch", "prior"]

    @classmethod
    def of(cls, family: str, *, observations: int, learned: bool | None = None,
           variant: str = "online") -> Provenance:
        """An online model's provenance: its version is how many records it has learned."""
        learned = observations > 0 if learned is None else learned
        return cls(family=family, variant=variant, version=str(observations),  # type: ignore[arg-type]
                   source="online" if learned else "prior")
