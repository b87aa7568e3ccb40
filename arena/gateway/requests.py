"""A generations or edits request (JSON or multipart) read within the size limit and checked into arena's words.

Every problem is a GatewayError naming the parameter: 413 for a body over max_body_bytes (counted
while it is read, never buffered past the limit), 415 for a content type the endpoint does not
take, 400 for malformed JSON, a missing prompt, a bad value or an image that does not decode.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
from dataclasses import dataclass, field

import orjson
from starlette.requests import Request

from arena.errors import ImageError
from arena.gateway.replies import GatewayError
from arena.images import ImageInfo, inspect_image
from arena.params import OUTPUT_FORMATS, RESPONSE_FORMATS, check_params
from arena.providers.base import InputImage

MAX_N = 10  # OpenAI's limit for n
MAX_IMAGES = 16  # OpenAI's limit of input images per edit
MAX_FIELDS = 64
# Fields the gateway reads itself; every other one passes through to the provider in params.
OWN_FIELDS = {
    "model",
    "prompt",
    "n",
    "size",
    "aspect_ratio",
    "resolution",
    "response_format",
    "output_format",
    "output_compression",
    "provider",
    "user",  # OpenAI's end-user id: for abuse reports at OpenAI, not something to forward
    "image",
    "image[]",
    "images",
    "mask",
}
# Fields that are text whatever they look like; other form fields are read as JSON would carry them.
TEXT_FIELDS = {"model", "prompt", "size", "aspect_ratio", "resolution", "response_format"}
TEXT_FIELDS |= {"output_format", "user", "quality", "background", "moderation", "style"}
DATA_URI_RE = re.compile(r"^data:([\w.+-]+/[\w.+-]+)?(;[^,]*)?;base64,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class GatewayRequest:
    """One images request in arena's words: what forwarding needs, every value checked."""

    task: str  # "text-to-image" or "edit"
    model: str  # as asked: arena's model name, or "provider/model"
    prompt: str
    n: int = 1
    size: str | None = None
    aspect_ratio: str | None = None
    resolution: str | None = None
    response_format: str = "b64_json"
    output_format: str | None = None
    output_compression: int | None = None
    images: tuple[InputImage, ...] = ()
    mask: InputImage | None = None
    provider: dict | None = None  # the routing extension object (OpenRouter's shape)
    params: dict = field(default_factory=dict)  # passed through to the provider


def bad(param: str | None, message: str, code: str = "invalid_value") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


# --- reading the body within the limit -------------------------------------------------------


def limited(request: Request, max_bytes: int) -> Request:
    """The request, its body cut off with a 413 once more than max_bytes arrive (and at once when
    Content-Length says so), so nothing past the limit is read or buffered."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    received = 0
    receive = request.receive

    async def counting_receive():
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise too_large(max_bytes)
        return message

    return Request(request.scope, counting_receive)


def too_large(max_bytes: int) -> GatewayError:
    return GatewayError(
        413,
        f"the request body is over the gateway's limit of {max_bytes} bytes (gateway.max_body_bytes)",
        code="request_too_large",
    )


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_json(request: Request, max_bytes: int) -> dict:
    chunks = [chunk async for chunk in limited(request, max_bytes).stream()]
    try:
        data = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise bad(None, f"the body is not valid JSON: {exc}", "invalid_json") from None
    if not isinstance(data, dict):
        raise bad(None, "the body must be a JSON object", "invalid_json")
    return data


# --- the two endpoints ---------------------------------------------------------------------------


async def read_generation(request: Request, max_bytes: int) -> GatewayRequest:
    """POST /v1/images/generations: a JSON body (CreateImageRequest)."""
    if content_type(request) != "application/json":
        raise unsupported_type(request, "application/json")
    return _checked(await read_json(request, max_bytes), "text-to-image", ())


async def read_edit(request: Request, max_bytes: int) -> GatewayRequest:
    """POST /v1/images/edits: multipart (`image` or `image[]`, repeated; `mask`), or JSON with
    `images: [{"image_url": "data:..."}]` (EditImageBodyJsonParam)."""
    kind = content_type(request)
    if kind == "multipart/form-data":
        return await _read_multipart_edit(request, max_bytes)
    if kind == "application/json":
        body = await read_json(request, max_bytes)
        images = body.get("images")
        if images is None:
            raise bad(
                "images",
                "an edit needs `images`: a list of {image_url: data URI}",
                "missing_required_parameter",
            )
        if not isinstance(images, list) or not images:
            raise bad("images", "`images` must be a non-empty list of {image_url: ...} objects")
        if len(images) > MAX_IMAGES:
            raise bad("images", f"at most {MAX_IMAGES} images, got {len(images)}")
        sources = [_image_ref(item, f"images[{i}]") for i, item in enumerate(images)]
        mask = None
        if body.get("mask") is not None:
            mask = _image_ref(body["mask"], "mask")
        checked = [await _inspected(data, name) for data, name in sources]
        mask_image = await _inspected(*mask) if mask else None
        return _checked(body, "edit", tuple(checked), mask_image, skip=("images", "mask"))
    raise unsupported_type(request, "multipart/form-data or application/json")


def unsupported_type(request: Request, wanted: str) -> GatewayError:
    got = content_type(request) or "none"
    return GatewayError(
        415,
        f"Content-Type {got} is not taken here: send {wanted}",
        code="unsupported_media_type",
    )


async def _read_multipart_edit(request: Request, max_bytes: int) -> GatewayRequest:
    try:
        form = await limited(request, max_bytes).form(
            max_files=MAX_IMAGES + 1, max_fields=MAX_FIELDS, max_part_size=1024 * 1024
        )
    except GatewayError:
        raise
    except Exception as exc:  # starlette's parser raises several types: all mean a bad upload
        raise bad(None, f"malformed multipart body: {exc}", "invalid_multipart") from None
    try:
        fields: dict = {}
        uploads: list[tuple[str, bytes, str]] = []
        mask = None
        for key, value in form.multi_items():
            if isinstance(value, str):
                if key in ("image", "image[]", "mask"):
                    raise bad(key, f"`{key}` must be a file upload, got a text field")
                if key in fields:
                    raise bad(key, f"`{key}` is given twice")
                fields[key] = value
                continue
            data = await value.read()
            name = value.filename or key
            if key in ("image", "image[]"):
                uploads.append((key, data, name))
            elif key == "mask":
                mask = (data, name)
            else:
                raise bad(
                    key, f"unexpected file field `{key}` (files go in image, image[] or mask)"
                )
    finally:
        await form.close()
    if not uploads:
        raise bad(
            "image",
            "an edit needs at least one image (field image or image[])",
            "missing_required_parameter",
        )
    if len(uploads) > MAX_IMAGES:
        raise bad("image", f"at most {MAX_IMAGES} images, got {len(uploads)}")
    images = tuple(
        [
            await _inspected(
                data,
                name,
                key if len(uploads) == 1 else f"{key.removesuffix('[]')}[{i}]",
                param=key,
            )
            for i, (key, data, name) in enumerate(uploads)
        ]
    )
    mask_image = await _inspected(*mask, "mask", param="mask") if mask else None
    return _checked(_typed_form(fields), "edit", images, mask_image)


def _typed_form(fields: dict[str, str]) -> dict:
    """Form fields as JSON would carry them: numbers, booleans and objects decoded, text as is."""
    out: dict = {}
    for key, text in fields.items():
        value: object = text
        stripped = text.strip()
        if key in TEXT_FIELDS:
            pass  # a prompt of "42" is words
        elif stripped in ("true", "false", "null") or re.fullmatch(r"-?\d+(\.\d+)?", stripped):
            value = json.loads(stripped)
        elif key == "provider" and stripped.startswith("{"):
            try:
                value = json.loads(stripped)
            except ValueError:
                raise bad("provider", "`provider` must be a JSON object") from None
        out[key] = value
    return out


def _image_ref(item, where: str) -> tuple[bytes, str]:
    """An ImageRefParam ({image_url: data URI}) as bytes; URLs and file ids are refused."""
    if not isinstance(item, dict):
        raise bad(where, f"`{where}` must be an object with image_url")
    if item.get("file_id") is not None:
        raise bad(
            f"{where}.file_id",
            "file ids are not served here: send the image as a data URI in image_url",
            "unsupported_parameter",
        )
    url = item.get("image_url")
    if not isinstance(url, str) or not url:
        raise bad(
            f"{where}.image_url",
            f"`{where}.image_url` is required: a data:image/...;base64,... URI",
            "missing_required_parameter",
        )
    if url.startswith(("http://", "https://")):
        raise bad(
            f"{where}.image_url",
            "the gateway does not fetch image URLs: send the image as a data URI (data:image/png;base64,...)",
            "unsupported_parameter",
        )
    match = DATA_URI_RE.match(url)
    if not match:
        raise bad(f"{where}.image_url", "not a base64 data URI (data:image/png;base64,...)")
    try:
        data = base64.b64decode(match.group(3), validate=True)
    except (binascii.Error, ValueError):
        raise bad(f"{where}.image_url", "the data URI's base64 does not decode") from None
    return data, where


async def _inspected(
    data: bytes, name: str, where: str | None = None, *, param: str | None = None
) -> InputImage:
    """An uploaded image decoded and checked off the event loop; a bad one is 400 naming the field."""
    where = where or name
    try:
        info: ImageInfo = await asyncio.to_thread(inspect_image, data)
    except ImageError as exc:
        label = f"{where} ({name})" if name != where else where
        raise bad(param or where, f"{label}: {exc}", "invalid_image") from None
    return InputImage(
        data=data, mime=info.mime, name=name if "." in name else f"{name}.{info.extension}"
    )


# --- the fields ----------------------------------------------------------------------------------


def _text(body: dict, key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if required:
            raise bad(key, f"`{key}` is required", "missing_required_parameter")
        return None
    if not isinstance(value, str):
        raise bad(key, f"`{key}` must be a string, got {type(value).__name__}", "invalid_type")
    return value


def _integer(body: dict, key: str, low: int, high: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise bad(key, f"`{key}` must be an integer from {low} to {high}, got {value!r}")
    return value


def _checked(
    body: dict,
    task: str,
    images: tuple[InputImage, ...],
    mask: InputImage | None = None,
    skip: tuple[str, ...] = (),
) -> GatewayRequest:
    model = _text(body, "model", required=True)
    if not model.strip():
        raise bad("model", "`model` is empty: name one of GET /v1/models")
    prompt = _text(body, "prompt", required=True)
    if not prompt.strip():
        raise bad("prompt", "`prompt` is empty", "missing_required_parameter")
    n = _integer(body, "n", 1, MAX_N) or 1
    response_format = _text(body, "response_format") or "b64_json"
    if response_format not in RESPONSE_FORMATS:
        raise bad(
            "response_format",
            f"`response_format` must be one of {', '.join(RESPONSE_FORMATS)}, got {response_format!r}",
        )
    output_format = _text(body, "output_format")
    if output_format is not None:
        output_format = output_format.lower()
        if output_format not in OUTPUT_FORMATS:
            raise bad(
                "output_format",
                f"`output_format` must be one of png, jpeg, webp, got {output_format!r}",
            )
        output_format = "jpeg" if output_format == "jpg" else output_format
    compression = _integer(body, "output_compression", 0, 100)
    provider = body.get("provider")
    if provider is not None and not isinstance(provider, dict):
        raise bad(
            "provider",
            '`provider` must be an object, e.g. {"order": ["openai"]}',
            "invalid_provider_preferences",
        )
    if body.get("stream") is True:
        raise bad(
            "stream",
            "streaming is not served by the gateway: leave out `stream`",
            "unsupported_parameter",
        )
    extra = {
        k: v for k, v in body.items() if k not in OWN_FIELDS and k not in skip and v is not None
    }
    extra.pop("stream", None)  # false: the one reply the gateway gives anyway

    def refuse(source, where, problem):
        return bad(
            where.removeprefix("params."),
            f"`{where.removeprefix('params.')}` {problem}",
            "invalid_parameter",
        )

    params = check_params(extra, "request", "params", error=refuse)
    return GatewayRequest(
        task=task,
        model=model.strip(),
        prompt=prompt,
        n=n,
        size=_text(body, "size"),
        aspect_ratio=_text(body, "aspect_ratio"),
        resolution=_text(body, "resolution"),
        response_format=response_format,
        output_format=output_format,
        output_compression=compression,
        images=images,
        mask=mask,
        provider=provider,
        params=params,
    )
