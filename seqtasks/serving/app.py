"""The HTTP application: a JSON endpoint per model, the page at ``/``, stats, and the uvicorn runner.

Why FastAPI + uvicorn rather than LitServe: LitServe serves one model (one ``LitAPI``) per server with its
own worker processes; here several models of different tasks share one process behind one page, on one
2-core machine, with no extra worker processes. FastAPI gives plain ASGI routes, and the batching
LitServe would bring is a few lines of asyncio (:mod:`seqtasks.serving.batching`).

Endpoints (``{model}`` is a name from ``GET /api/models``):

* ``POST /api/{model}/classify`` ``{"text"}`` or ``{"texts"}``
* ``POST /api/{model}/tag`` ``{"text"}`` or ``{"texts"}``
* ``POST /api/{model}/translate`` ``{"text" | "texts", "beam": 1, "nbest": 1}``
* ``POST /api/{model}/generate`` ``{"steps", "temperature", "top_k", "top_p", "seed", "min_steps"}``
* ``GET /api/models``, ``GET /api/stats`` (requests vs batches per model), ``GET /`` (the page)

A ``{"text"}`` request is answered with one record, ``{"texts"}`` with ``{"records": [...]}``. Every
refusal is a 4xx ``{"error": message}``; an unexpected failure is logged here and answered with a short
500 ``{"error"}``, never a traceback; the server keeps serving either way.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from seqtasks.serving.batching import MicroBatcher
from seqtasks.serving.models import (
    MAX_BEAM,
    MAX_CHARS,
    MAX_STEPS,
    MAX_TEXTS,
    RequestError,
    ServedModel,
    classify_records,
    generate_record,
    generate_settings,
    request_texts,
    tag_records,
    translate_records,
    translate_settings,
)

log = logging.getLogger("seqtasks.serve")

MAX_BODY = 1_000_000
"""Bytes of a request body at most (64 texts of 5,000 characters fit, with room for JSON escapes)."""


class Lifetime:
    """When the server stops by itself: after ``max_requests`` API answers, or ``idle_exit`` idle seconds."""

    def __init__(self, max_requests: int | None = None, idle_exit: float | None = None) -> None:
        self.max_requests = max_requests
        self.idle_exit = idle_exit
        self.answered = 0
        self.last = time.monotonic()
        self.server: Any = None  # the uvicorn.Server, set by run_server

    def touch(self) -> None:
        self.last = time.monotonic()

    def answered_one(self) -> None:
        self.answered += 1
        self.touch()
        if self.max_requests is not None and self.answered >= self.max_requests:
            self.stop(f"answered {self.answered} requests (--max-requests)")

    def stop(self, why: str) -> None:
        if self.server is not None and not self.server.should_exit:
            log.warning("seqtasks serve: stopping: %s", why)
            self.server.should_exit = True

    async def watch(self) -> None:
        while self.idle_exit is not None:
            await asyncio.sleep(min(1.0, self.idle_exit / 4))
            if time.monotonic() - self.last >= self.idle_exit:
                self.stop(f"no request for {self.idle_exit:g} s (--idle-exit)")
                return


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    models: Sequence[ServedModel],
    max_batch: int = 32,
    max_wait_ms: float = 0.0,
    lifetime: Lifetime | None = None,
) -> FastAPI:
    """The application serving ``models`` (each answers the endpoint of its kind)."""
    from seqtasks.serving.page import PAGE

    by_name = {model.name: model for model in models}
    lifetime = lifetime or Lifetime()
    batchers: dict[tuple[str, Any], MicroBatcher] = {}
    generated = {name: 0 for name in by_name}

    def batcher(model: ServedModel, key: Any, predict: Any) -> MicroBatcher:
        if (model.name, key) not in batchers:
            batchers[(model.name, key)] = MicroBatcher(predict, model.executor, max_batch, max_wait_ms)
        return batchers[(model.name, key)]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        watch = asyncio.get_running_loop().create_task(lifetime.watch())
        yield
        watch.cancel()
        for b in batchers.values():
            await b.close()
        for model in models:
            model.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="seqtasks", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.models = by_name
    app.state.lifetime = lifetime

    @app.exception_handler(RequestError)
    async def refused(request: Request, exc: RequestError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else json.dumps(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such endpoint: {request.method} {request.url.path}"
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
        return error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("seqtasks serve: %s %s failed", request.method, request.url.path)
        return error(500, f"internal error ({type(exc).__name__}); the server log has the details")

    @app.middleware("http")
    async def count(request: Request, call_next: Any) -> Any:
        lifetime.touch()
        response = await call_next(request)
        if request.url.path.startswith("/api/"):
            lifetime.answered_one()
        return response

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    @app.get("/api/models")
    async def list_models() -> dict[str, Any]:
        limits = {
            "max_chars": MAX_CHARS,
            "max_texts": MAX_TEXTS,
            "max_steps": MAX_STEPS,
            "max_beam": MAX_BEAM,
        }
        return {"models": [m.describe() for m in models], "limits": limits}

    @app.get("/api/stats")
    async def stats() -> dict[str, Any]:
        per_model: dict[str, dict[str, int]] = {
            name: {"requests": 0, "items": 0, "batches": 0, "largest_batch": 0} for name in by_name
        }
        for (name, _), b in batchers.items():
            entry = per_model[name]
            for key, value in b.stats.as_dict().items():
                entry[key] = max(entry[key], value) if key == "largest_batch" else entry[key] + value
        for name, count in generated.items():
            if by_name[name].kind == "generate":
                per_model[name]["requests"] = per_model[name]["batches"] = count
        return {"models": per_model, "answered": lifetime.answered}

    async def body_of(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise RequestError(413, f"request body of {len(raw)} bytes; the limit is {MAX_BODY}")
        if not raw.strip():
            raise RequestError(400, "empty request body; send a JSON object")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(400, f"invalid JSON: {getattr(exc, 'msg', exc)}") from None
        if not isinstance(body, dict):
            raise RequestError(400, f"the request body must be a JSON object, got {type(body).__name__}")
        return body

    def model_for(name: str, kind: str) -> ServedModel:
        model = by_name.get(name)
        if model is None:
            known = ", ".join(by_name) or "(none)"
            raise RequestError(404, f"unknown model {name!r}; the models are: {known}")
        if model.kind != kind:
            raise RequestError(
                400, f"model {name!r} does not {kind}; it answers POST /api/{name}/{model.kind}"
            )
        return model

    async def run_texts(model: ServedModel, key: Any, predict: Any, texts: list[str], single: bool) -> Any:
        try:
            records = await batcher(model, key, predict).submit(texts)
        except ValueError as exc:  # an input the predictor refuses (e.g. a text with no token)
            raise RequestError(400, str(exc)) from None
        return records[0] if single else {"records": records}

    @app.post("/api/{name}/classify")
    async def classify(name: str, request: Request) -> Any:
        model = model_for(name, "classify")
        texts, single = request_texts(await body_of(request))
        return await run_texts(model, None, lambda t: classify_records(model.predictor, t), texts, single)

    @app.post("/api/{name}/tag")
    async def tag(name: str, request: Request) -> Any:
        model = model_for(name, "tag")
        texts, single = request_texts(await body_of(request))
        return await run_texts(model, None, lambda t: tag_records(model.predictor, t), texts, single)

    @app.post("/api/{name}/translate")
    async def translate(name: str, request: Request) -> Any:
        model = model_for(name, "translate")
        body = await body_of(request)
        texts, single = request_texts(body)
        beam, nbest = translate_settings(body)
        predict = lambda t: translate_records(model.predictor, t, beam, nbest)  # noqa: E731
        return await run_texts(model, (beam, nbest), predict, texts, single)

    @app.post("/api/{name}/generate")
    async def generate(name: str, request: Request) -> Any:
        model = model_for(name, "generate")
        settings = generate_settings(await body_of(request), model)
        loop = asyncio.get_running_loop()
        try:
            record = await loop.run_in_executor(model.executor, generate_record, model.predictor, settings)
        except ValueError as exc:  # sampling settings the model refuses (top_p on a piano roll)
            raise RequestError(400, str(exc)) from None
        generated[name] += 1
        return record

    return app


def run_server(
    models: Sequence[ServedModel],
    host: str = "127.0.0.1",
    port: int = 8000,
    max_batch: int = 32,
    max_wait_ms: float = 0.0,
    max_requests: int | None = None,
    idle_exit: float | None = None,
    log_level: str = "warning",
) -> None:
    """Serve ``models`` until interrupted (or the lifetime limits); port 0 picks a free port.

    The bound address is printed as ``seqtasks serve: listening on http://HOST:PORT`` (flushed) once the
    socket is bound, before the first request can arrive.
    """
    import socket

    import uvicorn

    lifetime = Lifetime(max_requests, idle_exit)
    app = create_app(models, max_batch, max_wait_ms, lifetime)
    config = uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    lifetime.server = server
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only then; without it a
    # response's headers and body wait on the client's delayed ACK (~40 ms a request)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"seqtasks serve: cannot listen on {host}:{port}: {exc.strerror}") from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    names = ", ".join(f"{m.name} ({m.kind})" for m in models)
    print(f"seqtasks serve: listening on http://{shown}:{bound} — models: {names}", flush=True)
    server.run(sockets=[sock])
