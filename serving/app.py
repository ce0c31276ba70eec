"""The HTTP face (DESIGN's HTTP contract): a FastAPI app over the service.

The service is :class:`predictor.serving.service.Service`.

Routes hold no logic. Every decision route is made from
:data:`predictor.serving.catalog.CATALOG`: it validates the body against the
decision's request model, asks the engine, and returns the response model.
Ingestion hands the parsed body to the service, which stores it durably
before the reply. The MCP server of :mod:`predictor.serving.mcp_server` is mounted at
``/mcp`` (streamable HTTP).

With ``api_token`` set, ingestion, ``/v1/models/reload`` and ``/mcp`` need
``Authorization: Bearer <token>``, and with ``auth="all"`` every ``/v1`` route
does; bodies over ``max_body_bytes`` get 413.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from starlette.routing import Route

from predictor import __version__
from predictor.api.base import MAX_DURATION_MS, MAX_EPOCH_S
from predictor.bottlenecks import BottlenecksRequest, BottlenecksResponse, Thresholds
from predictor.data.schema import CallRecord, HealthRecord, RecordError
from predictor.engine import warm_up
from predictor.serving.catalog import CATALOG, Decision
from predictor.serving.errors import ERROR_RESPONSES, ErrorBody, validation_error
from predictor.serving.mcp_server import build_mcp_server
from predictor.serving.metrics import Metrics
from predictor.serving.service import IngestReport, IngestResult, QueueFull, Service
from predictor.serving.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("predictor.http")

ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]
_JSON = "application/json"


class _BodyTooLarge(Exception):
    pass


class _Guard:
    """Pure ASGI middleware: body size limit and Prometheus request metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body_bytes: int,
                 paths: dict[Any, str] | None = None, token: str | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes
        self.paths = paths or {}  # endpoint -> route path, for plain routes
        #: With ``auth="all"``: the token every /v1 route needs (the routes that always
        #: need it check it themselves as well).
        self.token = token

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["path"] == "/mcp":
            # The MCP app is mounted at /mcp/; without this, /mcp answers a 307 that
            # some clients (the MCP Inspector) do not follow with their POST.
            scope = {**scope, "path": "/mcp/", "raw_path": b"/mcp/"}
        started = time.perf_counter()
        status = [500]
        if self.token is not None and scope["path"].startswith("/v1/"):
            header = dict(scope.get("headers", ())).get(b"authorization", b"")
            if not _token_ok(header.decode("latin-1"), self.token):
                status[0] = 401
                body = b'{"detail":"missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                self._observe(scope, 401, started)
                return
        limit = self.max_body_bytes
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                await self._too_large(send, status)
                self._observe(scope, status[0], started)
                return
        seen = [0]

        async def counting_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise _BodyTooLarge
            return message

        async def recording_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, recording_send)
        except _BodyTooLarge:
            await self._too_large(send, status)
        self._observe(scope, status[0], started)

    async def _too_large(self, send: Callable, status: list[int]) -> None:
        status[0] = 413
        body = orjson.dumps({"detail": f"request body over {self.max_body_bytes} bytes"})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _observe(self, scope: dict, status: int, started: float) -> None:
        route = scope.get("route")
        # Plain Starlette routes (the hot select route) leave only their endpoint.
        path = getattr(route, "path", None) or self.paths.get(scope.get("endpoint"), "unmatched")
        self.metrics.requests.labels(route=path, method=scope["method"], status=status).inc()
        self.metrics.latency.labels(route=path).observe(time.perf_counter() - started)


def _token_ok(header: str | None, token: str) -> bool:
    scheme, _, given = (header or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


class _RequireToken:
    """ASGI wrapper for the MCP app: Bearer token when one is configured."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if self.token is not None and scope["type"] == "http":
            header = dict(scope.get("headers", ())).get(b"authorization", b"").decode("latin-1")
            if not _token_ok(header, self.token):
                body = b'{"detail":"missing or wrong bearer token"}'
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def _json(model: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.__pydantic_serializer__.to_json(model), status_code=status_code,
                    media_type=_JSON, headers=headers)


def create_app(settings: Settings | None = None, service: Service | None = None,
               decisions: tuple[Decision, ...] = CATALOG) -> FastAPI:
    """The FastAPI app of ``predictor serve``; starts and stops ``service`` with itself.

    Every row of ``decisions`` (default: the decisions table) becomes a route.
    """
    settings = settings or Settings()
    service = service or Service(settings)
    metrics = service.metrics
    token = settings.api_token.get_secret_value() if settings.api_token else None
    mcp_server = build_mcp_server(service, decisions)
    mcp_app = mcp_server.streamable_http_app(streamable_http_path="/", host=settings.host)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.start)
        if service.settings.role != "replica":
            # The first records learned load numba's compiled loops, holding the
            # interpreter: here, before serving, not during a request (a decision asked
            # while a fresh service learned its first batch waited 205-229 ms in
            # bench/first_ingest.py).
            await run_in_threadpool(warm_up)
        try:
            async with mcp_server.session_manager.run():
                yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(title="predictor", version=__version__, lifespan=lifespan,
                  summary="Learned decisions for MCP workflows, from their telemetry.")
    app.state.service = service
    app.add_exception_handler(RequestValidationError, validation_error)

    def require_token(request: Request) -> None:
        if token is not None and not _token_ok(request.headers.get("authorization"), token):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})

    # --- operations -------------------------------------------------------------
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Readiness: online models caught up with the store, registry read, store writable."""
        state = await run_in_threadpool(service.readiness)
        return JSONResponse(state, status_code=200 if state["ready"] else 503)

    @app.get("/metrics", tags=["operations"], response_class=PlainTextResponse,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format 0.0.4"}})
    async def prometheus_metrics() -> Response:
        """Prometheus text exposition."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # --- ingestion ---------------------------------------------------------------
    async def _ingest(request: Request, ingest: Callable[..., IngestResult], *,
                      parsed: bool = True) -> Response:
        with service.ingestion():
            return await _ingest_body(request, ingest, parsed=parsed)

    async def _ingest_body(request: Request, ingest: Callable[..., IngestResult], *,
                           parsed: bool = True) -> Response:
        """``ingest`` the body: parsed JSON, or (``parsed=False``) its bytes, parsed in the
        thread pool with the rest of the work rather than on the event loop."""
        body: Any = await request.body()
        if parsed:
            try:
                body = orjson.loads(body)
            except orjson.JSONDecodeError as err:
                raise HTTPException(400, f"body is not JSON: {err}") from None
        batch_id = request.headers.get("idempotency-key")
        try:
            result = await run_in_threadpool(ingest, body, batch_id)
        except orjson.JSONDecodeError as err:
            raise HTTPException(400, f"body is not JSON: {err}") from None
        except RecordError as err:
            field = "Idempotency-Key" if err.field == "batch_id" and batch_id else err.field
            raise HTTPException(422, f"{field}: {err.reason}") from None
        except QueueFull as err:
            return JSONResponse({"detail": str(err), "pending_records": err.pending},
                                status_code=429, headers={"Retry-After": str(err.retry_after)})
        report = IngestReport.of(result)
        # Nothing usable at all is an error; a partly valid batch keeps its valid records.
        failed = result.accepted == 0 and result.rejected > 0
        return _json(report, 422 if failed else 200)

    ingest_doc = {"requestBody": {"required": True, "content": {_JSON: {"schema": {
        "type": "array", "items": {"anyOf": [{"$ref": "#/components/schemas/CallRecord"},
                                             {"$ref": "#/components/schemas/HealthRecord"}]},
        "description": "telemetry records (kind call or health; fields other than these are "
                       "kept in attrs); {\"records\": [...]} also works",
    }}}}}
    ingest_doc["parameters"] = [{
        "name": "Idempotency-Key", "in": "header", "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": "a batch id: a retried batch (after a lost reply) is stored once and "
                       "answered as the first time, with replayed true (kept a day); "
                       "{\"batch_id\": ..., \"records\": [...]} in the body works too"}]
    ingest_errors = {
        400: {"model": ErrorBody, "description": "the body is not JSON"},
        413: {"model": ErrorBody, "description": "body over the configured size limit"},
        422: {"description": "no valid record (the report names each rejection), or not a "
                             "list of records (detail says why)",
              "content": {_JSON: {"schema": {"anyOf": [
                  {"$ref": "#/components/schemas/IngestReport"},
                  {"$ref": "#/components/schemas/ErrorBody"}]}}}},
        429: {"model": ErrorBody, "description": "learning queue full; retry after Retry-After"},
    }

    @app.post("/v1/telemetry", tags=["ingestion"], response_model=IngestReport,
              dependencies=[Depends(require_token)], openapi_extra=ingest_doc,
              responses=ingest_errors)
    async def telemetry(request: Request) -> Response:
        """Ingest a batch of telemetry records: durable before the reply, learned online."""
        return await _ingest(request, service.ingest_json, parsed=False)

    async def _ingest_protobuf(request: Request) -> Response:
        from predictor.data.otlp_protobuf import PROTOBUF, decode_traces, encode_response

        with service.ingestion():
            try:
                body = await run_in_threadpool(decode_traces, await request.body())
                result = await run_in_threadpool(service.ingest_otlp, body,
                                                 request.headers.get("idempotency-key"))
            except RecordError as err:
                raise HTTPException(400, f"{err.field}: {err.reason}") from None
            except QueueFull as err:
                return JSONResponse({"detail": str(err), "pending_records": err.pending},
                                    status_code=429,
                                    headers={"Retry-After": str(err.retry_after)})
        first = result.errors[0] if result.errors else None
        message = f"{first['index']} {first['field']}: {first['reason']}" if first else ""
        return Response(encode_response(result.rejected, message), media_type=PROTOBUF)

    traces_errors = {**ingest_errors, 400: {"model": ErrorBody, "description": "the body is "
                                            "not JSON, or not an OTLP protobuf export"}}

    @app.post("/v1/traces", tags=["ingestion"], response_model=IngestReport,
              dependencies=[Depends(require_token)],
              openapi_extra={"requestBody": {"required": True, "content": {
                  _JSON: {"schema": {"type": "object",
                                     "description": "OTLP/HTTP JSON ExportTraceServiceRequest"}},
                  "application/x-protobuf": {"schema": {
                      "type": "string", "format": "binary",
                      "description": "OTLP/HTTP protobuf ExportTraceServiceRequest (what "
                                     "OpenTelemetry SDK exporters send); answered with a "
                                     "protobuf ExportTraceServiceResponse whose "
                                     "partial_success counts rejected spans"}}}},
                  "parameters": ingest_doc["parameters"]},
              responses=traces_errors)
    async def traces(request: Request) -> Response:
        """Ingest OTLP/HTTP spans (JSON or protobuf); MCP tools/call spans become call records."""
        if request.headers.get("content-type", "").startswith("application/x-protobuf"):
            return await _ingest_protobuf(request)
        return await _ingest(request, service.ingest_otlp)

    # --- decisions ---------------------------------------------------------------
    plain_paths: dict[Any, str] = {}
    for decision in decisions:
        if decision.http != "POST":
            continue
        endpoint = _decision_endpoint(service, decision)
        app.add_api_route(decision.path, endpoint,
                          methods=["POST"], response_model=decision.response,
                          summary=decision.summary.split(":")[0].split(",")[0],
                          description=decision.summary, tags=["decisions"],
                          name=decision.name, responses=ERROR_RESPONSES)
        if decision.name == "select":
            # The hottest route is matched first, as a plain Starlette route: it
            # skips FastAPI's dependency solving (the endpoint reads its own body)
            # and a dozen failed route matches. The FastAPI route above still
            # documents it; the app's exception handlers serve both.
            app.router.routes.insert(0, Route(decision.path, endpoint, methods=["POST"],
                                              include_in_schema=False))
            plain_paths[endpoint] = decision.path

    @app.get("/v1/bottlenecks", tags=["decisions"], response_model=BottlenecksResponse,
             responses=ERROR_RESPONSES)
    async def bottlenecks(
        now: float | None = Query(None, ge=0, le=MAX_EPOCH_S,
                                  description="window end, epoch s; default: latest "
                                              "telemetry time"),
        latency_p95_ms: float = Query(2000.0, gt=0, le=MAX_DURATION_MS),
        throughput_per_min: float = Query(50.0, ge=0, le=1e12),
        memory_pct: float = Query(80.0, ge=0, le=100),
        cpu_pct: float = Query(70.0, ge=0, le=100),
    ) -> Response:
        """Servers and tools that breach, or are forecast to breach, the alert thresholds."""
        try:
            request = BottlenecksRequest(now=now, thresholds=Thresholds(
                latency_p95_ms=latency_p95_ms, throughput_per_min=throughput_per_min,
                memory_pct=memory_pct, cpu_pct=cpu_pct))
        except ValidationError as err:  # the query's bounds are the model's; this is a guard
            raise RequestValidationError(
                [{**e, "loc": ("query", *e["loc"])} for e in err.errors(include_url=False)]
            ) from None
        answer = await run_in_threadpool(service.engine.answer, "bottlenecks", request)
        metrics.decisions.labels(decision="bottlenecks", source=answer.model.source).inc()
        return _json(answer)

    # --- models -----------------------------------------------------------------
    @app.get("/v1/models", tags=["models"])
    async def models() -> dict[str, Any]:
        """Each family: champion, version, source (online/batch), metrics, trained-at."""
        return service.models()

    @app.post("/v1/models/reload", tags=["models"], dependencies=[Depends(require_token)])
    async def reload() -> dict[str, Any]:
        """Load the registry's current champions and swap them in at once."""
        try:
            return await run_in_threadpool(service.reload)
        except Exception as err:
            raise HTTPException(503, f"registry not readable: {err}") from None

    _document_requests(app, decisions)
    app.mount("/mcp", _RequireToken(mcp_app, token))
    app.add_middleware(_Guard, metrics=metrics, max_body_bytes=settings.max_body_bytes,
                       paths=plain_paths, token=token if settings.auth == "all" else None)
    return app


def _decision_endpoint(service: Service, decision: Decision) -> Callable[..., Awaitable[Response]]:
    """A route that validates the raw body itself (pydantic-core, straight from bytes).

    Cheaper than a FastAPI body parameter (stdlib JSON decoding, then a
    validation per field): on the hottest route the difference is most of the
    framework's cost. The OpenAPI document still names the request model
    (see ``_document_requests``).
    """
    name = decision.name
    model = decision.request
    inline = decision.inline
    counter = service.metrics.decisions

    async def endpoint(request: Request) -> Response:
        try:
            body = model.model_validate_json(await request.body() or b"{}")
        except ValidationError as err:
            raise RequestValidationError(err.errors(include_url=False)) from None
        ask = service.engine.answer
        try:
            answer = ask(name, body) if inline else await run_in_threadpool(ask, name, body)
        except ValueError as err:  # e.g. a plan whose dependencies form a cycle
            raise HTTPException(422, str(err)) from None
        source = getattr(answer, "source", None) or getattr(
            getattr(answer, "model", None), "source", "rule")
        child = children.get(source)
        if child is None:
            child = children[source] = counter.labels(decision=decision.name, source=source)
        child.inc()
        previous = last[0]
        if previous[0] is answer:  # a memoized answer (select): reuse its bytes
            return Response(previous[1], media_type=_JSON)
        payload = answer.__pydantic_serializer__.to_json(answer)
        last[0] = (answer, payload)
        return Response(payload, media_type=_JSON)

    last: list[tuple[Any, bytes]] = [(None, b"")]
    children: dict[str, Any] = {}  # the counter per source, looked up once
    endpoint.__name__ = decision.name
    return endpoint


def _document_requests(app: FastAPI, decisions: tuple[Decision, ...]) -> None:
    """Put each decision's request model into the OpenAPI document of its route."""
    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = default_openapi()
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for record in (CallRecord, HealthRecord):  # the ingestion routes' items
            body = record.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[record.__name__] = body
        for decision in decisions:
            if decision.http != "POST":
                continue
            model = decision.request
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(body.pop("$defs", {}))
            components[model.__name__] = body
            schema["paths"][decision.path]["post"]["requestBody"] = {
                "required": True,
                "content": {_JSON: {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
