"""The decisions both faces serve: :data:`predictor.decisions.DECISIONS`.

:mod:`predictor.serving.app` makes a route of each row and
:mod:`predictor.serving.mcp_server` a tool, so the two faces cannot drift
apart and neither holds any logic. The table lives with the decisions
(``predictor/decisions.py``); this module only names it for the serving layer.

>>> [d.tool for d in CATALOG][:3]
['select_server', 'allocate_resources', 'adjust_allocation']
>>> {d.path for d in CATALOG} >= {"/v1/select", "/v1/context/reduce", "/v1/plan"}
True
"""

from __future__ import annotations

from predictor.decisions import DECISIONS, Decision

__all__ = ["CATALOG", "Decision"]

CATALOG = DECISIONS
