"""Python clients of the HTTP API (httpx), synchronous and asynchronous.

One method per route. Requests may be the request models or plain dicts;
answers are the response models (``models``, ``ready`` and ``reload``
return dicts). Errors raise :class:`httpx.HTTPStatusError`; a 429 from
ingestion raises :class:`Throttled` with the server's ``Retry-After``.

>>> client = PredictorClient("http://127.0.0.1:8000", token="s3cret")
>>> client._http.headers["authorization"]
'Bearer s3cret'
>>> client.close()
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from predictor.allocate import AdjustResponse, AllocateResponse
from predictor.bottlenecks import BottlenecksResponse
from predictor.context import ReduceResponse
from predictor.plan import PlanResponse
from predictor.preload import PreloadResponse
from predictor.recover import RecoverResponse
from predictor.risk import RiskResponse
from predictor.scale import ScaleResponse
from predictor.select import SelectResponse
from predictor.serving.service import IngestReport
from predictor.validate import ValidateResponse

__all__ = ["AsyncPredictorClient", "PredictorClient", "Throttled"]

M = TypeVar("M", bound=BaseModel)
Body = BaseModel | dict[str, Any]


class Throttled(RuntimeError):
    """The service's learning queue is full; retry after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"throttled; retry after {retry_after} s")
        self.retry_after = retry_after


def _json(body: Body | list[Any]) -> Any:
    return body.model_dump(mode="json", exclude_none=True) if isinstance(body, BaseModel) else body


def _check(reply: httpx.Response) -> httpx.Response:
    if reply.status_code == 429:
        raise Throttled(float(reply.headers.get("retry-after", "1")))
    reply.raise_for_status()
    return reply


def _headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


class PredictorClient:
    """Synchronous client; use as a context manager or call :meth:`close`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, token: str | None = None,
                 timeout: float = 30.0) -> None:
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=_headers(token))

    def __enter__(self) -> PredictorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: Any, model: type[M]) -> M:
        return model.model_validate_json(_check(self._http.post(path, json=_json(body))).content)

    def telemetry(self, records: list[dict[str, Any]]) -> IngestReport:
        return self._post("/v1/telemetry", records, IngestReport)

    def traces(self, otlp: dict[str, Any]) -> IngestReport:
        return self._post("/v1/traces", otlp, IngestReport)

    def select(self, request: Body) -> SelectResponse:
        return self._post("/v1/select", request, SelectResponse)

    def allocate(self, request: Body) -> AllocateResponse:
        return self._post("/v1/allocate", request, AllocateResponse)

    def adjust(self, request: Body) -> AdjustResponse:
        return self._post("/v1/allocate/adjust", request, AdjustResponse)

    def preload(self, request: Body) -> PreloadResponse:
        return self._post("/v1/preload", request, PreloadResponse)

    def scale(self, request: Body) -> ScaleResponse:
        return self._post("/v1/scale", request, ScaleResponse)

    def risk(self, request: Body) -> RiskResponse:
        return self._post("/v1/risk", request, RiskResponse)

    def recover(self, request: Body) -> RecoverResponse:
        return self._post("/v1/recover", request, RecoverResponse)

    def reduce_context(self, request: Body) -> ReduceResponse:
        return self._post("/v1/context/reduce", request, ReduceResponse)

    def plan(self, request: Body) -> PlanResponse:
        return self._post("/v1/plan", request, PlanResponse)

    def validate(self, request: Body) -> ValidateResponse:
        return self._post("/v1/validate", request, ValidateResponse)

    def bottlenecks(self, **params: float) -> BottlenecksResponse:
        reply = _check(self._http.get("/v1/bottlenecks", params=params))
        return BottlenecksResponse.model_validate_json(reply.content)

    def models(self) -> dict[str, Any]:
        return _check(self._http.get("/v1/models")).json()

    def reload(self) -> dict[str, Any]:
        return _check(self._http.post("/v1/models/reload")).json()

    def ready(self) -> dict[str, Any]:
        return self._http.get("/readyz").json()

    def health(self) -> bool:
        return self._http.get("/healthz").status_code == 200


class AsyncPredictorClient:
    """Asynchronous client; use as an async context manager or await :meth:`aclose`."""

    def __init__(self, base_url: str = "http://127.0.0.1:8000", *, token: str | None = None,
                 timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout,
                                       headers=_headers(token))

    async def __aenter__(self) -> AsyncPredictorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _post(self, path: str, body: Any, model: type[M]) -> M:
        reply = await self._http.post(path, json=_json(body))
        return model.model_validate_json(_check(reply).content)

    async def telemetry(self, records: list[dict[str, Any]]) -> IngestReport:
        return await self._post("/v1/telemetry", records, IngestReport)

    async def traces(self, otlp: dict[str, Any]) -> IngestReport:
        return await self._post("/v1/traces", otlp, IngestReport)

    async def select(self, request: Body) -> SelectResponse:
        return await self._post("/v1/select", request, SelectResponse)

    async def allocate(self, request: Body) -> AllocateResponse:
        return await self._post("/v1/allocate", request, AllocateResponse)

    async def adjust(self, request: Body) -> AdjustResponse:
        return await self._post("/v1/allocate/adjust", request, AdjustResponse)

    async def preload(self, request: Body) -> PreloadResponse:
        return await self._post("/v1/preload", request, PreloadResponse)

    async def scale(self, request: Body) -> ScaleResponse:
        return await self._post("/v1/scale", request, ScaleResponse)

    async def risk(self, request: Body) -> RiskResponse:
        return await self._post("/v1/risk", request, RiskResponse)

    async def recover(self, request: Body) -> RecoverResponse:
        return await self._post("/v1/recover", request, RecoverResponse)

    async def reduce_context(self, request: Body) -> ReduceResponse:
        return await self._post("/v1/context/reduce", request, ReduceResponse)

    async def plan(self, request: Body) -> PlanResponse:
        return await self._post("/v1/plan", request, PlanResponse)

    async def validate(self, request: Body) -> ValidateResponse:
        return await self._post("/v1/validate", request, ValidateResponse)

    async def bottlenecks(self, **params: float) -> BottlenecksResponse:
        reply = _check(await self._http.get("/v1/bottlenecks", params=params))
        return BottlenecksResponse.model_validate_json(reply.content)

    async def models(self) -> dict[str, Any]:
        return _check(await self._http.get("/v1/models")).json()

    async def reload(self) -> dict[str, Any]:
        return _check(await self._http.post("/v1/models/reload")).json()

    async def ready(self) -> dict[str, Any]:
        return (await self._http.get("/readyz")).json()

    async def health(self) -> bool:
        return (await self._http.get("/healthz")).status_code == 200
