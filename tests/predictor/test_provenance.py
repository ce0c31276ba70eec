from __future__ import annotations

from predictor.allocate import AllocateRequest, Allocator, PhaseSpec
from predictor.bottlenecks import BottleneckFinder
from predictor.plan import Operation, Planner, PlanRequest
from predictor.preload import Preloader, PreloadRequest
from predictor.recover import Recoverer, RecoverRequest
from predictor.risk import RiskAssessor, RiskRequest
from predictor.scale import Scaler, ScaleRequest


def test_every_learned_decision_says_which_model_answered_and_from_what():
    answers = {
        "risk": RiskAssessor().assess(RiskRequest(server="a", ts=0)),
        "load": Scaler().scale(ScaleRequest(server="a", current_replicas=1,
                                            capacity_per_replica=1)),
        "cache": Preloader().preload(PreloadRequest(recent=["k"])),
        "resources": Allocator().allocate(AllocateRequest(phases=[PhaseSpec(phase="p",
                                                                             tool="t")])),
        "performance": BottleneckFinder().find(now=0.0),
    }
    for family, answer in answers.items():
        assert answer.model.family == family
        assert answer.model.source == "prior"
    assert Recoverer().recover(RecoverRequest(error_type="timeout", server="a")).model.source \
        == "prior"
    planner = Planner()
    planner.observe("t", 10.0)
    plan = planner.plan(PlanRequest(operations=[Operation(id="x", tool="t")]))
    assert plan.model.source == "online" and plan.model.version == "1"
