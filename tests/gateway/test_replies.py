"""A success reply's body: the provider's base64 passed on unchanged, sent as pieces that make one JSON."""

from __future__ import annotations

import base64
import random

import httpx
import orjson
from fake_openai import PNG
from hypothesis import given, settings
from hypothesis import strategies as st

from arena.gateway.replies import B64_MARK, images_reply, images_response

from .kit import gateway_settings, make_key, running_gateway

texts = st.text(max_size=20) | st.just(B64_MARK + "0") | st.just("\\u0000arena-b64:1")
payloads = st.integers(0, 2**32).map(
    lambda seed: base64.b64encode(random.Random(seed).randbytes(seed % 3000))
)


@settings(max_examples=60, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=4), texts, st.sampled_from([None, "png"]))
def test_the_pieces_make_the_json_of_the_whole_body(b64s, model, output_format):
    items = [{"b64_json": text} for text in b64s]
    body, pieces = images_response(
        items, output_format=output_format, size="8x8", metadata={"model": model}, created=1
    )
    reply = images_reply(body, pieces)
    sent = b"".join(reply.pieces)
    assert int(reply.headers["content-length"]) == len(sent)
    whole = {"created": 1, "data": [{"b64_json": t.decode()} for t in b64s]}
    if output_format:
        whole["output_format"] = output_format
    whole |= {"size": "8x8", "metadata": {"model": model}}
    assert orjson.loads(sent) == whole


def test_the_providers_base64_reaches_the_caller_unchanged(tmp_path, db_url, fake_upstream):
    settings = gateway_settings(
        tmp_path,
        db_url,
        providers={"oai": {"protocol": "openai", "base_url": fake_upstream.base_url}},
        models={"gpt": {"routes": {"oai": "ok"}, "price": 0.04}},
    )
    headers = {"Authorization": f"Bearer {make_key(settings)}"}
    with running_gateway(settings) as (url, _):
        reply = httpx.post(
            f"{url}/v1/images/generations",
            json={"model": "gpt", "prompt": "a fox", "n": 2},
            headers=headers,
            timeout=60,
        )
    assert reply.status_code == 200, reply.text
    assert int(reply.headers["content-length"]) == len(reply.content)
    assert [d["b64_json"] for d in reply.json()["data"]] == [base64.b64encode(PNG).decode()] * 2
