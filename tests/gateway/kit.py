"""The gateway's test helpers: a config of loopback routes, the app served by uvicorn in a thread with
every exchange recorded, keys, the attempts it wrote, and the OpenAPI checks of what went over the wire."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import sqlalchemy as sa
from fake_openai import form_as_json, schema_errors, unknown_fields
from starlette.requests import Request
from support.servers import serve_in_thread

from arena import store
from arena.config import load_settings
from arena.gateway import create_app
from arena.gateway.figures import RouteFigureCache
from arena.gateway.routing import RouteFigures
from arena.providers import protocol_facts
from arena.store.keys import create_key
from arena.store.tables import Attempt


def write_gateway_config(
    path: Path,
    *,
    db_url: str,
    data_dir: Path,
    providers: dict[str, dict],
    models: dict[str, dict],
    gateway: dict | None = None,
) -> Path:
    """An arena.toml: providers {name: {protocol, base_url, timeout_s, ...}}, models {name: {tasks,
    routes: {provider: model_id}}} and a [gateway] table."""
    lines = [f'data_dir = "{data_dir}"', f'database_url = "{db_url}"', "store_retry_s = 1.0", ""]
    for name, table in providers.items():
        lines.append(f"[providers.{name}]")
        table = {"rate_limit_per_s": 100.0, "max_concurrency": 8, "timeout_s": 10.0, **table}
        lines += [f"{k} = {_toml(v)}" for k, v in table.items()]
        lines.append("")
    for name, table in models.items():
        lines.append(f'[models."{name}"]')
        lines.append(f"tasks = {_toml(table.get('tasks', ['text-to-image', 'edit']))}")
        for provider, model_id in table["routes"].items():
            lines.append(f'[models."{name}".providers.{provider}]')
            lines.append(f"model_id = {_toml(model_id)}")
            lines.append(f"price_usd = {table.get('price', 0.01)}")
        lines.append("")
    if gateway:
        lines.append("[gateway]")
        lines += [f"{k} = {_toml(v)}" for k, v in gateway.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def settings_from(path: Path):
    return load_settings(path, protocols=protocol_facts())


def gateway_settings(
    tmp_path: Path,
    db_url: str,
    *,
    providers: dict[str, dict],
    models: dict[str, dict],
    gateway: dict | None = None,
):
    """Settings from tmp_path/arena.toml (write_gateway_config), the data dir tmp_path/data."""
    return settings_from(
        write_gateway_config(
            tmp_path / "arena.toml",
            db_url=db_url,
            data_dir=tmp_path / "data",
            providers=providers,
            models=models,
            gateway=gateway,
        )
    )


@dataclass
class Exchange:
    """One request to the gateway and its reply, as they went over the wire."""

    method: str
    path: str
    content_type: str
    body: bytes
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    reply: bytes = b""
    form: dict | None = None  # a multipart body read as JSON (fake_openai.form_as_json)
    query: str = ""


class Recorder:
    """ASGI wrapper that keeps every exchange (request body replayed to the app unchanged)."""

    def __init__(self, app) -> None:
        self.app = app
        self.exchanges: list[Exchange] = []

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        exchange = Exchange(scope["method"], scope["path"], headers.get("content-type", ""), body)
        exchange.query = scope.get("query_string", b"").decode("latin-1")
        self.exchanges.append(exchange)
        if exchange.content_type.startswith("multipart/form-data"):
            exchange.form = await _form_as_json(scope, body)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client stays connected

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.headers = {
                    k.decode("latin-1").lower(): v.decode("latin-1")
                    for k, v in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                exchange.reply += message.get("body", b"")
            await send(message)

        await self.app(scope, replay, capture)

    def images_exchanges(self) -> list[Exchange]:
        """The images requests and replies in OpenAI's shapes (a dry run's reply is arena's own)."""
        return [
            e
            for e in self.exchanges
            if e.path.startswith("/v1/images/") and "dry_run=true" not in e.query
        ]


async def _form_as_json(scope, body: bytes) -> dict | None:
    done = False

    async def once():
        nonlocal done
        if done:
            return {"type": "http.request", "body": b"", "more_body": False}
        done = True
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        async with Request(scope, once).form(max_part_size=10 * 1024 * 1024) as form:
            fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
            files: dict[str, list] = {}
            for key, value in form.multi_items():
                if not isinstance(value, str):
                    files.setdefault(key, []).append(value)
            return form_as_json(fields, files, "CreateImageEditRequest")
    except Exception:
        return None


def conformance_errors(exchange: Exchange) -> list[str]:
    """How one gateway exchange departs from OpenAI's OpenAPI document (empty when it conforms)."""
    errors: list[str] = []
    edit = exchange.path.endswith("/edits")
    if exchange.form is not None:
        request, schema = exchange.form, "CreateImageEditRequest"
    else:
        request = orjson.loads(exchange.body)
        schema = "EditImageBodyJsonParam" if edit else "CreateImageRequest"
    errors += [f"request: {e}" for e in schema_errors(schema, request)]
    errors += [
        f"request: unknown field {f}"
        for f in unknown_fields(schema, request)
        if f != "provider"  # the routing extension (OpenRouter's shape)
    ]
    reply = orjson.loads(exchange.reply)
    name = "ErrorResponse" if exchange.status >= 400 else "ImagesResponse"
    errors += [f"reply: {e}" for e in schema_errors(name, copy.deepcopy(reply))]
    if exchange.status >= 400 and set(reply["error"]) < {"message", "type", "param", "code"}:
        errors.append(f"reply: error lacks a field: {sorted(reply['error'])}")
    return errors


@contextlib.contextmanager
def running_gateway(settings, **app_options):
    """The gateway app under uvicorn on loopback (its lifespan run), recorded; yields (url, recorder).

    The port is the kernel's choice, known only once it listens: url replies are pointed at it then
    (what [gateway] public_url says for a gateway on a fixed address)."""
    app = create_app(settings, **app_options)
    recorder = Recorder(app)
    with serve_in_thread(recorder, name="gateway", lifespan="on") as served:
        app.state.gateway.files.public_url = served.url
        yield served.url, recorder


def make_key(settings, name: str = "tester", **options) -> str:
    engine = store.open_engine(settings.database_url)
    try:
        return create_key(engine, name, **options)
    finally:
        engine.dispose()


def traffic_rows(settings) -> list[dict]:
    """Every attempt the gateway wrote, oldest first."""
    engine = store.open_engine(settings.database_url)
    table = Attempt.__table__
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(table).order_by(table.c.id)).mappings().all()
    finally:
        engine.dispose()
    return [dict(r) for r in rows]


class FixedFigures(RouteFigureCache):
    """Figures the test sets, instead of the store's."""

    def __init__(self, figures: dict[str, dict[str, RouteFigures]]) -> None:
        super().__init__(None, 30.0)
        self.fixed = figures

    def load(self) -> None:
        return None

    def figures(self, model: str) -> dict[str, RouteFigures]:
        return self.fixed.get(model, {})
