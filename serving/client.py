"""Python clients of the HTTP API (httpx), synchronous and asynchronous.

One method per decision, made from the decisions table
(:data:`predictor.decisions.DECISIONS`): ``client.select(request)``,
``client.scale(request)``, ... Requests may be the request models or plain
dicts; answers are the response models (``models``, ``ready`` and
``reload`` return dicts). Errors raise :class:`httpx.HTTPStatusError`; a
429 from ingestion raises :class:`Throttled` with the server's
``Retry-After``. Importing this module loads no model library.

>>> client = PredictorClient("http://127.0.0.1:8000", token="s3cret")
>>> client._http.headers["authorization"]
'Bearer s3cret'
>>> callable(client.select), callable(client.cooldown)
(True, True)
>>> client.close()
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from predictor.api.telemetry import IngestReport
from predictor.decisions import DECISIONS, Decision

__all__ = ["AsyncPredictorClient", "PredictorClient", "Throttled", "with_decisions"]

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












    async def models(self) -> dict[str, Any]:
        return _check(await self._http.get("/v1/models")).json()

    async def reload(self) -> dict[str, Any]:
        return _check(await self._http.post("/v1/models/reload")).json()

    async def ready(self) -> dict[str, Any]:
        return (await self._http.get("/readyz")).json()

    async def health(self) -> bool:
        return (await self._http.get("/healthz")).status_code == 200


def _sync_method(decision: Decision) -> Callable[..., BaseModel]:
    def ask(self: PredictorClient, request: Body | None = None, **params: Any) -> BaseModel:
        if decision.http == "GET":
            reply = _check(self._http.get(decision.path, params=params))
            return decision.response.model_validate_json(reply.content)
        return self._post(decision.path, request if request is not None else params,
                          decision.response)

    return ask


def _async_method(decision: Decision) -> Callable[..., Awaitable[BaseModel]]:
    async def ask(self: AsyncPredictorClient, request: Body | None = None,
                  **params: Any) -> BaseModel:
        if decision.http == "GET":
            reply = _check(await self._http.get(decision.path, params=params))
            return decision.response.model_validate_json(reply.content)
        return await self._post(decision.path, request if request is not None else params,
                                decision.response)

    return ask


def _add_methods(cls: type, decisions: tuple[Decision, ...], make: Callable) -> None:
    for decision in decisions:
        method = make(decision)
        method.__name__ = method.__qualname__ = decision.name
        method.__doc__ = (f"{decision.http} {decision.path}: {decision.summary} "
                          f"Returns {decision.response.__name__}.")
        setattr(cls, decision.name, method)


_add_methods(PredictorClient, DECISIONS, _sync_method)
_add_methods(AsyncPredictorClient, DECISIONS, _async_method)


def with_decisions(decisions: tuple[Decision, ...],
                   base: type[PredictorClient] = PredictorClient) -> type[PredictorClient]:
    """A client class with a method for each of ``decisions`` (e.g. a plug-in's own table)."""
    cls = type(base.__name__, (base,), {})
    _add_methods(cls, decisions, _sync_method)
    return cls
