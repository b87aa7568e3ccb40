"""Bad requests: each a 4xx in OpenAI's error shape naming what was wrong (413 over the body limit,
415, malformed JSON, missing prompt, unknown model, a bad upload, an unsupported parameter); and
what a good request becomes upstream: parameters passed through, the forwarded body conforming."""

from __future__ import annotations

import base64

import httpx
import pytest
from fake_openai import conformance_errors as upstream_errors
from support.images import make_png

from .kit import (
    conformance_errors,
    gateway_settings,
    make_key,
    running_gateway,
    traffic_rows,
)


@pytest.fixture
def small_gateway(local_settings):
    """The local-provider gateway with a 20 kB body limit: (url, headers, recorder, settings)."""
    settings = local_settings(max_body_bytes=20_000)
    key = make_key(settings)
    with running_gateway(settings) as (url, recorder):
        yield url, {"Authorization": f"Bearer {key}"}, recorder, settings


def error_of(reply: httpx.Response, status: int) -> dict:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error"}
    assert {"message", "type", "param", "code"} <= set(body["error"])
    assert reply.headers["x-arena-request-id"].startswith("req_")
    assert "Traceback" not in reply.text
    return body["error"]


def test_bodies_over_the_limit_are_413(small_gateway):
    url, headers, _, _ = small_gateway
    big = {"model": "prompt-card", "prompt": "x" * 30_000}
    error = error_of(httpx.post(f"{url}/v1/images/generations", json=big, headers=headers), 413)
    assert error["code"] == "request_too_large" and "20000" in error["message"]

    def chunks():  # no Content-Length: the limit holds while the body is read
        yield b'{"model": "prompt-card", "prompt": "'
        for _ in range(100):
            yield b"y" * 1000
        yield b'"}'

    chunked = httpx.post(
        f"{url}/v1/images/generations",
        content=chunks(),
        headers={**headers, "Content-Type": "application/json"},
    )
    assert error_of(chunked, 413)["code"] == "request_too_large"
    upload = httpx.post(
        f"{url}/v1/images/edits",
        data={"model": "identity", "prompt": "x"},
        files={"image": ("big.png", make_png(400, 400, (1, 2, 3)) + b"\0" * 30_000, "image/png")},
        headers=headers,
    )
    assert error_of(upload, 413)["code"] == "request_too_large"


def test_malformed_and_incomplete_requests_are_400_naming_the_field(small_gateway):
    url, headers, recorder, settings = small_gateway

    def post(path, **kw):
        return httpx.post(f"{url}{path}", **{"headers": headers, **kw})

    gen = "/v1/images/generations"
    error = error_of(
        post(
            gen,
            content=b'{"model": "prompt-',
            headers={**headers, "Content-Type": "application/json"},
        ),
        400,
    )
    assert error["code"] == "invalid_json"
    assert error_of(post(gen, json=["a list"]), 400)["code"] == "invalid_json"
    error = error_of(post(gen, json={"model": "prompt-card"}), 400)
    assert error["param"] == "prompt" and error["code"] == "missing_required_parameter"
    assert error_of(post(gen, json={"prompt": "x"}), 400)["param"] == "model"
    assert (
        error_of(post(gen, json={"model": "prompt-card", "prompt": "x", "n": 0}), 400)["param"]
        == "n"
    )
    error = error_of(
        post(gen, json={"model": "prompt-card", "prompt": "x", "response_format": "gif"}), 400
    )
    assert error["param"] == "response_format"
    error = error_of(post(gen, json={"model": "prompt-card", "prompt": "x", "stream": True}), 400)
    assert error["param"] == "stream" and error["code"] == "unsupported_parameter"
    error = error_of(
        post(gen, json={"model": "prompt-card", "prompt": "x", "api_key": "sk-1"}), 400
    )
    assert error["param"] == "api_key"
    error = error_of(post(gen, json={"model": "nope", "prompt": "x"}), 404)
    assert error["code"] == "model_not_found" and error["type"] == "not_found_error"
    error = error_of(post(gen, data={"model": "prompt-card", "prompt": "x"}), 415)
    assert error["code"] == "unsupported_media_type"
    assert error_of(
        post("/v1/images/edits", content=b"x", headers={**headers, "Content-Type": "text/plain"}),
        415,
    )
    assert error_of(httpx.get(f"{url}{gen}"), 405)["code"] == "method_not_allowed"
    assert error_of(httpx.get(f"{url}/v1/nothing-here"), 404)["code"] == "unknown_url"
    for exchange in recorder.images_exchanges():
        if (
            exchange.content_type.startswith("application/json")
            and exchange.body.startswith(b"{")
            and exchange.body.endswith(b"}")
        ):
            errors = [e for e in conformance_errors(exchange) if e.startswith("reply")]
            assert errors == [], exchange.body[:80]
    assert traffic_rows(settings) == []


def test_bad_uploads_are_400_naming_the_field(small_gateway):
    url, headers, _, _ = small_gateway
    edit = f"{url}/v1/images/edits"
    data = {"model": "identity", "prompt": "x"}
    error = error_of(
        httpx.post(
            edit,
            data=data,
            files={"image": ("a.png", b"not an image", "image/png")},
            headers=headers,
        ),
        400,
    )
    assert (
        error["param"] == "image"
        and error["code"] == "invalid_image"
        and "a.png" in error["message"]
    )
    good = ("g.png", make_png(32, 32), "image/png")
    error = error_of(
        httpx.post(
            edit,
            data=data,
            files=[("image[]", good), ("image[]", ("b.png", b"GIF89a-broken", "image/gif"))],
            headers=headers,
        ),
        400,
    )
    assert error["param"] == "image[]" and "image[1]" in error["message"]
    error = error_of(
        httpx.post(
            edit,
            data=data,
            files={"image": good, "mask": ("m.png", b"\x89PNG", "image/png")},
            headers=headers,
        ),
        400,
    )
    assert error["param"] == "mask"
    error = error_of(httpx.post(edit, data=data, headers=headers, files={"other": good}), 400)
    assert error["param"] == "other"
    error = error_of(
        httpx.post(edit, data={**data, "image": "text"}, files={"x": good}, headers=headers), 400
    )
    assert error["param"] == "image"
    error = error_of(
        httpx.post(edit, json={"model": "identity", "prompt": "x"}, headers=headers), 400
    )
    assert error["param"] == "images"
    broken = httpx.post(
        edit,
        content=b"--nothing\r\nContent-Disposition: form-data\r\n\r\n",
        headers={**headers, "Content-Type": "multipart/form-data"},  # no boundary
    )
    assert error_of(broken, 400)["code"] == "invalid_multipart"
    many = [("image[]", (f"{i}.png", make_png(16, 16), "image/png")) for i in range(18)]
    too_many = error_of(httpx.post(edit, data=data, files=many, headers=headers), 400)
    assert "many" in too_many["message"] or "at most" in too_many["message"]
    error = error_of(
        httpx.post(
            edit,
            json={**data, "images": [{"image_url": "data:image/png;base64,@@@"}]},
            headers=headers,
        ),
        400,
    )
    assert error["param"] == "images[0].image_url"
    error = error_of(
        httpx.post(edit, json={**data, "images": [{"file_id": "file-1"}]}, headers=headers), 400
    )
    assert error["param"] == "images[0].file_id"


def test_an_unsupported_parameter_is_400_naming_it(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv("XAI_TEST_KEY", "xai-secret-123")
    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={
            "grok": {
                "protocol": "xai",
                "base_url": "http://127.0.0.1:9/v1",
                "api_key_env": "XAI_TEST_KEY",
            }
        },
        models={"g": {"routes": {"grok": "grok-imagine-image"}}},
    )
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = httpx.post(
            f"{url}/v1/images/generations",
            json={"model": "g", "prompt": "x", "partial_images": 2},
            headers={"Authorization": f"Bearer {key}"},
        )
    error = error_of(reply, 400)
    assert error["param"] == "partial_images" and error["code"] == "unsupported_parameter"
    assert "g@grok" in error["message"] and "xai" in error["message"]


def test_what_reaches_the_provider(tmp_path, db_url, fake_upstream):
    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={"oai": {"protocol": "openai", "base_url": fake_upstream.base_url}},
        models={"gpt": {"routes": {"oai": "ok"}, "price": 0.04}},
    )
    key = make_key(settings)
    headers = {"Authorization": f"Bearer {key}"}
    source = make_png(48, 48, (5, 5, 5))
    with running_gateway(settings) as (url, recorder):
        generated = httpx.post(
            f"{url}/v1/images/generations",
            json={
                "model": "gpt",
                "prompt": "a fox",
                "quality": "high",
                "size": "1536x1024",
                "n": 2,
                "user": "u1",
            },
            headers=headers,
            timeout=60,
        )
        edited = httpx.post(
            f"{url}/v1/images/edits",
            data={"model": "gpt", "prompt": "a hat", "background": "opaque", "n": "1"},
            files=[
                ("image[]", ("a.png", source, "image/png")),
                ("mask", ("m.png", source, "image/png")),
            ],
            headers=headers,
            timeout=60,
        )
        converted = httpx.post(
            f"{url}/v1/images/generations",
            json={"model": "gpt", "prompt": "a fox", "output_format": "jpeg"},
            headers=headers,
            timeout=60,
        )
    assert generated.status_code == 200 and len(generated.json()["data"]) == 2
    assert generated.json()["metadata"]["cost_usd"] == pytest.approx(0.08)
    assert edited.status_code == 200, edited.text
    gen, edit, conv = fake_upstream.exchanges
    assert gen.body == {
        "model": "ok",
        "prompt": "a fox",
        "n": 2,
        "size": "1536x1024",
        "quality": "high",
    }
    assert "Authorization" not in gen.headers and key not in str(gen.headers)  # no key upstream
    assert edit.body["background"] == "opaque" and edit.body["model"] == "ok"
    assert [p[0] for p in edit.file_parts] == ["image[]", "mask"]
    assert conv.body["output_format"] == "jpeg"
    # The fake answers PNG bytes whatever the format: the gateway makes the format hold.
    jpeg = base64.b64decode(converted.json()["data"][0]["b64_json"])
    assert jpeg[:3] == b"\xff\xd8\xff" and converted.json()["output_format"] == "jpeg"
    for exchange in fake_upstream.exchanges:
        assert upstream_errors(exchange) == []
    for exchange in recorder.images_exchanges():
        assert conformance_errors(exchange) == []


def test_dry_run_names_the_route_and_price_without_generating(tmp_path, db_url, fake_upstream):
    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={
            "a": {"protocol": "openai", "base_url": fake_upstream.base_url},
            "b": {"protocol": "openai", "base_url": fake_upstream.base_url},
        },
        models={"gpt": {"routes": {"a": "ok", "b": "ok"}, "price": 0.04}},
    )
    key = make_key(settings)
    with running_gateway(settings) as (url, _):
        reply = httpx.post(
            f"{url}/v1/images/generations?dry_run=true",
            json={
                "model": "gpt",
                "prompt": "x",
                "n": 3,
                "size": "1000x1000",
                "provider": {"order": ["b"]},
            },
            headers={"Authorization": f"Bearer {key}"},
        )
        unauthorized = httpx.post(
            f"{url}/v1/images/generations?dry_run=true", json={"model": "gpt", "prompt": "x"}
        )
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["route"]["provider"] == "b" and [r["provider"] for r in body["order"]] == ["b", "a"]
    assert body["price_usd"] == pytest.approx(0.12)
    assert body["route"]["size"] == "1024x1024"  # normalized to the route's sizes
    assert fake_upstream.exchanges == [] and traffic_rows(settings) == []
    assert unauthorized.status_code == 401


class BrokenKeyRing:
    """A key ring with a bug: the app answers 500 in OpenAI's shape and logs one line."""

    async def authorize(self, authorization, *, expected_cost_usd=None):
        raise RuntimeError("internal detail /etc/secret-path\nsecond line")

    def charge(self, grant, cost_usd) -> None:
        return None

    async def aclose(self) -> None:
        return None


def test_a_bug_is_a_500_in_the_shape_and_one_log_line(local_settings, caplog):
    settings = local_settings()
    with running_gateway(settings, keyring=BrokenKeyRing()) as (url, _):
        reply = httpx.post(
            f"{url}/v1/images/generations", json={"model": "prompt-card", "prompt": "x"}
        )
    error = error_of(reply, 500)
    assert error["type"] == "server_error" and error["code"] == "internal_error"
    assert (
        "secret-path" not in reply.text and reply.headers["x-arena-request-id"] in error["message"]
    )
    logged = [r.getMessage() for r in caplog.records if r.name == "arena.gateway"]
    assert len(logged) == 1 and "RuntimeError" in logged[0] and "\n" not in logged[0]


def test_form_fields_are_read_as_json_would_carry_them(small_gateway):
    url, headers, _, _ = small_gateway
    source = make_png(32, 32, (7, 7, 7))
    reply = httpx.post(
        f"{url}/v1/images/edits",
        data={"model": "identity", "prompt": "42", "n": "2", "stream": "false"},
        files=[
            ("image", ("a.png", source, "image/png")),
            ("image", ("b.png", source, "image/png")),
        ],
        headers=headers,
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    assert len(reply.json()["data"]) == 2
    error = error_of(
        httpx.post(
            f"{url}/v1/images/edits",
            data={"model": "identity", "prompt": "x", "n": "two"},
            files={"image": ("a.png", source, "image/png")},
            headers=headers,
        ),
        400,
    )
    assert error["param"] == "n"
