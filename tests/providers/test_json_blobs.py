"""The large-base64 JSON fast path gives exactly what a full JSON parse gives."""

from __future__ import annotations

import base64
import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from arena.providers.wire import BLOB_MIN_BYTES, parse_json_blobs, resolve_blob


def _resolve(value, blobs):
    if isinstance(value, dict):
        return {k: _resolve(v, blobs) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, blobs) for v in value]
    value = resolve_blob(value, blobs)
    return value.decode() if isinstance(value, bytes) else value


texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)
payloads = st.tuples(st.integers(0, 2**32), st.integers(BLOB_MIN_BYTES, 2 * BLOB_MIN_BYTES)).map(
    lambda seed_size: base64.b64encode(random.Random(seed_size[0]).randbytes(seed_size[1])).decode()
)
items = st.fixed_dictionaries(
    {"b64_json": payloads}, optional={"revised_prompt": texts, "note": texts}
)


@settings(max_examples=40, deadline=None)
@given(st.lists(items, min_size=1, max_size=3), texts, st.sampled_from([None, 2]), st.booleans())
def test_fast_path_equals_a_full_parse(data, extra, indent, escape_slashes):
    body = json.dumps(
        {"created": 1, "data": data, "extra": extra, "b64_json_note": "b64_json"}, indent=indent
    )
    if escape_slashes:  # some encoders write "\/": the fast path must hand over to the full parser
        body = body.replace("/", "\\/")
    raw = body.encode()
    parsed, blobs = parse_json_blobs(raw, "reply", "b64_json")
    assert _resolve(parsed, blobs) == json.loads(raw)
    falls_back = escape_slashes and any("/" in item["b64_json"] for item in data)
    assert len(blobs) == (0 if falls_back else len(data))


def test_a_prompt_quoting_the_key_is_not_cut():
    b64 = base64.b64encode(b"x" * BLOB_MIN_BYTES).decode()
    body = json.dumps(
        {"data": [{"revised_prompt": 'write "b64_json": "here"', "b64_json": b64}]}
    ).encode()
    parsed, blobs = parse_json_blobs(body, "reply", "b64_json")
    assert parsed["data"][0]["revised_prompt"] == 'write "b64_json": "here"'
    assert blobs == [b64.encode()]
