from __future__ import annotations

import random

from predictor.allocate import AdjustRequest, AllocateRequest, Allocator, PhaseSpec, Usage


def _taught(seed: int = 0) -> Allocator:
    rng = random.Random(seed)
    allocator = Allocator()
    for _ in range(2000):
        allocator.observe("search", latency_ms=rng.lognormvariate(5.5, 0.5),
                          tokens=rng.gauss(400, 50), mem_mb=rng.gauss(80, 10),
                          cpu_pct=rng.gauss(20, 5))
    return allocator


def test_phase_intervals_cover_about_80_percent_of_simulated_phases():
    allocator = _taught()
    spec = PhaseSpec(phase="gather", tool="search", calls=5)
    band = allocator.allocate(AllocateRequest(phases=[spec])).phases[0].duration_ms
    rng = random.Random(1)
    inside = sum(band.low <= sum(rng.lognormvariate(5.5, 0.5) for _ in range(5)) <= band.high
                 for _ in range(2000)) / 2000
    assert 0.74 <= inside <= 0.86


def test_prior_answers_for_unknown_tools_and_totals_add_up():
    answer = _taught().allocate(AllocateRequest(phases=[
        PhaseSpec(phase="a", tool="search", calls=2), PhaseSpec(phase="b", tool="new", calls=1)]))
    assert [p.source for p in answer.phases] == ["online", "prior"]
    assert answer.source == "online"
    total = sum(p.duration_ms.expected for p in answer.phases)
    assert abs(answer.total.duration_ms.expected - total) < 1e-6
    assert answer.total.memory_mb.high >= max(p.memory_mb.high for p in answer.phases)


def test_adjust_flags_a_phase_outside_its_interval_and_re_estimates():
    allocator = _taught()
    phases = [PhaseSpec(phase="a", tool="search", calls=2),
              PhaseSpec(phase="b", tool="search", calls=2)]
    planned = allocator.allocate(AllocateRequest(phases=phases))
    slow = planned.phases[0].duration_ms.high * 3
    answer = allocator.adjust(AdjustRequest(phases=phases,
                                            actual={"a": Usage(duration_ms=slow)}))
    assert answer.deviating
    assert answer.deviations[0].outside and answer.deviations[0].metric == "duration_ms"
    assert answer.total.duration_ms.expected == round(slow + planned.phases[1].duration_ms
                                                      .expected, 3)
