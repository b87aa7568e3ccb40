"""The built-in `local` baseline provider: an OpenAI-images-compatible HTTP server on loopback.

Its models are honest baselines, labelled as such wherever shown: `identity` returns the input of an
edit unchanged (the floor every edit model must beat), `cartoon` and `night` are classical image
operations, `prompt-card` and `palette` render a prompt without any learned model.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import secrets
import socket
import threading
import time
from collections import OrderedDict

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from arena.errors import ImageError
from arena.images import encode_png, open_image

EDIT_MODELS = ("identity", "cartoon", "night")
GENERATION_MODELS = ("prompt-card", "palette")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_SIDE_PX = 2048
URL_CACHE_SIZE = 256  # results kept for `url` replies; older ones expire like real providers' URLs
COLOURS = {
    "red": (200, 40, 40),
    "orange": (240, 140, 30),
    "gold": (230, 180, 60),
    "golden": (235, 175, 70),
    "yellow": (240, 220, 60),
    "green": (60, 150, 70),
    "teal": (40, 140, 140),
    "blue": (50, 90, 200),
    "sky": (120, 180, 235),
    "purple": (120, 60, 160),
    "pink": (235, 130, 170),
    "brown": (120, 80, 50),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "gray": (128, 128, 128),
    "sunset": (250, 120, 60),
    "night": (20, 25, 60),
    "ocean": (30, 100, 160),
    "coffee": (110, 70, 40),
    "cream": (245, 235, 210),
    "vintage": (190, 160, 110),
    "anime": (255, 170, 200),
}


def _error(status: int, message: str, code: str, param: str | None = None) -> JSONResponse:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return JSONResponse(body, status_code=status)


def _parse_size(size: str | None) -> tuple[int, int] | None:
    if not size or size == "auto":
        return None
    match = re.fullmatch(r"(\d+)[x:](\d+)", size)
    if not match:
        raise ValueError(f"invalid size {size!r}: expected WxH")
    w, h = int(match.group(1)), int(match.group(2))
    if ":" in size:  # an aspect ratio: scale to about one megapixel
        scale = (1024 * 1024 / (w * h)) ** 0.5
        w, h = round(w * scale / 16) * 16, round(h * scale / 16) * 16
    if not (16 <= w <= MAX_SIDE_PX and 16 <= h <= MAX_SIDE_PX):
        raise ValueError(f"size {size!r} out of range 16..{MAX_SIDE_PX}")
    return w, h


def cartoon(image: Image.Image) -> Image.Image:
    """Edge-preserving smoothing, a reduced palette, and dark ink edges."""
    rgb = image.convert("RGB")
    smooth = rgb.filter(ImageFilter.MedianFilter(5)).filter(ImageFilter.SMOOTH_MORE)
    flat = ImageOps.posterize(smooth, 3)
    edges = rgb.convert("L").filter(ImageFilter.FIND_EDGES).filter(ImageFilter.MaxFilter(3))
    ink = np.asarray(edges, dtype=np.float32) / 255.0
    out = np.asarray(flat, dtype=np.float32) * (1.0 - np.clip(ink * 1.6, 0, 0.85))[..., None]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def night(image: Image.Image) -> Image.Image:
    """Darken, shift towards blue, vignette, and sprinkle a few stars in the brightest (sky) areas."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    h, w, _ = rgb.shape
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    graded = np.stack([luma * 0.35, luma * 0.45, luma * 0.75 + 0.05], axis=-1)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2))
    graded *= np.clip(1.15 - 0.45 * r, 0.3, 1.0)[..., None]
    rng = np.random.default_rng(int(luma.sum() * 1000) % (2**32))  # same input, same stars
    stars = (rng.random((h, w)) > 0.9985) & (luma > 0.6) & (yy < h * 0.6)
    graded[stars] = 1.0
    return Image.fromarray((graded.clip(0, 1) * 255).astype(np.uint8))


def _gradient(size: tuple[int, int], top: tuple, bottom: tuple) -> Image.Image:
    w, h = size
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    rows = np.array(top, dtype=np.float32) * (1 - t) + np.array(bottom, dtype=np.float32) * t
    return Image.fromarray(np.broadcast_to(rows, (h, w, 3)).astype(np.uint8))


def _prompt_colours(prompt: str) -> list[tuple]:
    words = re.findall(r"[a-z]+", prompt.lower())
    found = [COLOURS[w] for w in words if w in COLOURS]
    if len(found) < 2:
        digest = hashlib.sha256(prompt.encode()).digest()
        found += [tuple(digest[i : i + 3]) for i in (0, 3)]
    return found


def prompt_card(prompt: str, size: tuple[int, int]) -> Image.Image:
    """The prompt's words set plainly on a gradient of the colours it names."""
    colours = _prompt_colours(prompt)
    image = _gradient(size, colours[0], colours[1])
    draw = ImageDraw.Draw(image)
    w, h = size
    font = ImageFont.load_default(size=max(12, w // 28))
    words, lines, line = prompt.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > w * 0.86 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    step = int(font.size * 1.3)
    y = max(10, (h - step * len(lines)) // 2)
    for text in lines[: max(1, (h - 20) // step)]:
        x = (w - draw.textlength(text, font=font)) / 2
        draw.text((x + 2, y + 2), text, font=font, fill=(0, 0, 0))
        draw.text((x, y), text, font=font, fill=(255, 255, 255))
        y += step
    return image


def palette(prompt: str, size: tuple[int, int]) -> Image.Image:
    """Soft shapes in the colours the prompt names, placed by a hash of the prompt."""
    colours = _prompt_colours(prompt)
    image = _gradient(size, colours[0], colours[-1])
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big"))
    w, h = size
    for i in range(12):
        colour = colours[i % len(colours)]
        cx, cy, r = rng.random() * w, rng.random() * h, (0.05 + rng.random() * 0.2) * min(w, h)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour)
    return image.filter(ImageFilter.GaussianBlur(radius=max(2, min(w, h) // 60)))


def run_model(model: str, prompt: str, sources: list[bytes], size: tuple[int, int] | None) -> bytes:
    """Produce one PNG; runs in a worker thread."""
    if model == "identity":
        return sources[0]  # unchanged bytes: the honest floor
    if model in ("cartoon", "night"):
        image = open_image(sources[0])
        out = cartoon(image) if model == "cartoon" else night(image)
        return encode_png(out)
    size = size or (1024, 1024)
    out = prompt_card(prompt, size) if model == "prompt-card" else palette(prompt, size)
    return encode_png(out)


class LocalProvider:
    """The ASGI app plus the results it keeps for `url` replies."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.base_url = ""
        self._results: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.app = Starlette(
            routes=[
                Route("/v1/images/generations", self.generations, methods=["POST"]),
                Route("/v1/images/edits", self.edits, methods=["POST"]),
                Route("/v1/results/{token}", self.result, methods=["GET"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ]
        )

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True})

    async def models(self, request: Request) -> Response:
        data = [
            {"id": m, "object": "model", "owned_by": "arena-baseline"}
            for m in EDIT_MODELS + GENERATION_MODELS
        ]
        return JSONResponse({"object": "list", "data": data})

    async def result(self, request: Request) -> Response:
        with self._lock:
            data = self._results.get(request.path_params["token"])
        if data is None:
            return _error(404, "result expired or unknown", "not_found")
        return Response(data, media_type="image/png")

    async def generations(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "body is not valid JSON", "invalid_json")
        if not isinstance(body, dict):
            return _error(400, "body must be a JSON object", "invalid_json")
        model = body.get("model")
        if model in EDIT_MODELS:
            return _error(
                400,
                f"model {model!r} only does edits: use /v1/images/edits",
                "model_not_supported",
                "model",
            )
        if model not in GENERATION_MODELS:
            return _error(404, f"model {model!r} does not exist", "model_not_found", "model")
        return await self._respond(body, model, sources=[])

    async def edits(self, request: Request) -> Response:
        if int(request.headers.get("content-length") or 0) > MAX_UPLOAD_BYTES:
            return _error(413, "upload too large", "payload_too_large")
        try:
            form = await request.form(max_files=16, max_fields=64)
        except Exception as exc:  # the multipart parser raises several types; all mean a bad upload
            return _error(400, f"malformed multipart body: {exc}", "invalid_multipart")
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        uploads = [
            v for k, v in form.multi_items() if k in ("image", "image[]") and not isinstance(v, str)
        ]
        model = fields.get("model")
        if model in GENERATION_MODELS:
            return _error(400, f"model {model!r} does not do edits", "model_not_supported", "model")
        if model not in EDIT_MODELS:
            return _error(404, f"model {model!r} does not exist", "model_not_found", "model")
        if not uploads:
            return _error(
                400, "an edit needs at least one image (field image[])", "missing_image", "image"
            )
        sources = [await upload.read() for upload in uploads]
        await form.close()
        return await self._respond(fields, model, sources)

    async def _respond(self, body: dict, model: str, sources: list[bytes]) -> Response:
        prompt = body.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            return _error(400, "prompt is required", "missing_prompt", "prompt")
        try:
            size = _parse_size(body.get("size"))
            n = int(body.get("n", 1))
        except ValueError as exc:
            return _error(400, str(exc), "invalid_value", "size")
        if not 1 <= n <= 4:
            return _error(400, "n must be between 1 and 4", "invalid_value", "n")
        response_format = body.get("response_format", "b64_json")
        if response_format not in ("b64_json", "url"):
            return _error(
                400, "response_format must be url or b64_json", "invalid_value", "response_format"
            )
        started = time.perf_counter()
        try:
            images = [
                await run_in_threadpool(run_model, model, prompt, sources, size) for _ in range(n)
            ]
        except ImageError as exc:
            return _error(400, f"input image rejected: {exc}", "invalid_image", "image")
        remaining = self.delay_s - (time.perf_counter() - started)
        if remaining > 0:
            await asyncio.sleep(remaining)
        data = []
        for png in images:
            if response_format == "url":
                token = secrets.token_urlsafe(16)
                with self._lock:
                    self._results[token] = png
                    while len(self._results) > URL_CACHE_SIZE:
                        self._results.popitem(last=False)
                data.append({"url": f"{self.base_url}/v1/results/{token}"})
            else:
                data.append({"b64_json": base64.b64encode(png).decode("ascii")})
        return JSONResponse({"created": int(time.time()), "data": data, "output_format": "png"})


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalServer:
    """Runs the local provider under uvicorn in a background thread; a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, delay_s: float = 0.0) -> None:
        import uvicorn

        self.host = host
        self.port = port or free_port(host)
        self.provider = LocalProvider(delay_s=delay_s)
        self.provider.base_url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            self.provider.app,
            host=host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, name="arena-local-provider", daemon=True
        )

    @property
    def base_url(self) -> str:
        return f"{self.provider.base_url}/v1"

    def __enter__(self) -> LocalServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"local provider did not start on {self.host}:{self.port}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
