"""A workflow for ``predictor run``: phases of tool calls, and what the run must meet (YAML).

>>> workflow = Workflow.model_validate({
...     "name": "demo",
...     "phases": [
...         {"name": "research", "steps": [
...             {"id": "now", "tool": "get_current_time", "arguments": {"timezone": "UTC"}},
...             {"id": "log", "tool": "git_log"}]},
...         {"name": "write", "steps": [
...             {"id": "notes", "tool": "write_file", "arguments": {"path": "notes.md"},
...              "context": {"from": ["now", "log"], "query": "recent commits",
...                          "into": "content"}}]}]})
>>> workflow.expectations.max_tokens, workflow.max_batch, workflow.steps()["notes"].context.into
(50000, 10, 'content')
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from predictor.api.base import MAX_NAME, MAX_TOKENS

__all__ = ["ContextSpec", "Expectations", "Phase", "Step", "Workflow", "load_workflow"]

_ID = r"^[A-Za-z0-9_.:-]+$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ContextSpec(_Strict):
    """Context passed into a step from the answers of earlier steps, under a token budget.

    The answers are cut into passages, the ``reduce_context`` decision keeps
    the passages relevant to ``query`` that fit ``budget_tokens``, and their
    text, in the order the answers came, becomes the argument ``into``.
    """

    sources: list[str] = Field(alias="from", min_length=1, max_length=100,
                               description="ids of earlier steps whose answers are the context")
    query: str = Field(min_length=1, max_length=10_000,
                       description="what the context is for: passages are kept by relevance "
                                   "to it")
    into: str = Field(min_length=1, max_length=MAX_NAME,
                      description="the argument that receives the context text")
    budget_tokens: int = Field(default=2000, ge=1, le=MAX_TOKENS,
                               description="tokens of context passed at most")
    threshold: float = Field(default=0.2, ge=0, le=1, description="passages less relevant "
                             "than this (share of the query's words, weighted) are dropped")


class Step(_Strict):
    """One tool call of a phase."""

    id: str = Field(min_length=1, max_length=200, pattern=_ID)
    tool: str = Field(min_length=1, max_length=MAX_NAME, description="a tool the gateway lists")
    arguments: dict[str, Any] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list, max_length=1000,
                                  description="steps that must finish first (this phase's or "
                                              "an earlier one's)")
    context: ContextSpec | None = None


class Phase(_Strict):
    """Steps that run together; the run compares each phase with its predicted needs."""

    name: str = Field(min_length=1, max_length=200, pattern=_ID)
    steps: list[Step] = Field(min_length=1, max_length=1000)


class Expectations(_Strict):
    """What the whole run must meet (the seed's defaults); null skips a check."""

    max_duration_ms: float | None = Field(default=300_000.0, ge=0, le=1e12)
    min_success_rate: float | None = Field(default=0.95, ge=0, le=1)
    max_memory_mb: float | None = Field(default=512.0, ge=0, le=1e9)
    max_tokens: int | None = Field(default=50_000, ge=0, le=10**15)


class Workflow(_Strict):
    """``predictor run WORKFLOW.yaml``."""

    name: str = Field(min_length=1, max_length=200, pattern=_ID)
    description: str = Field(default="", max_length=10_000)
    expectations: Expectations = Field(default_factory=Expectations)
    max_batch: int = Field(default=10, ge=1, le=10,
                           description="steps run at once at most (the seed's batches of 10)")
    coverage: float = Field(default=0.8, description="coverage of the predicted intervals a "
                            "phase is compared with (0.5, 0.8, 0.9 or 0.95)")
    phases: list[Phase] = Field(min_length=1, max_length=100)

    def steps(self) -> dict[str, Step]:
        """Every step by id."""
        return {step.id: step for phase in self.phases for step in phase.steps}

    @model_validator(mode="after")
    def _consistent(self) -> Workflow:
        if self.coverage not in (0.5, 0.8, 0.9, 0.95):
            raise ValueError("coverage: one of 0.5, 0.8, 0.9, 0.95")
        names = [phase.name for phase in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phase names repeat: {names}")
        seen: set[str] = set()
        for phase in self.phases:
            here = {step.id for step in phase.steps}
            if len(here) != len(phase.steps) or here & seen:
                raise ValueError(f"phase {phase.name!r}: step ids repeat")
            for step in phase.steps:
                needed = set(step.depends_on) | set(step.context.sources if step.context else [])
                unknown = needed - seen - here
                if unknown:
                    raise ValueError(f"step {step.id!r}: depends on {sorted(unknown)}, not a step "
                                     "of this phase or an earlier one")
                if step.id in needed:
                    raise ValueError(f"step {step.id!r} depends on itself")
            seen |= here
        return self


def load_workflow(path: str | Path) -> Workflow:
    """Read and validate a workflow YAML file."""
    return Workflow.model_validate(yaml.safe_load(Path(path).read_text()))
