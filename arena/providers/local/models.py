"""The local provider's baseline models: honest image operations with no learned model.

`identity` returns the input of an edit unchanged (the floor every edit model must beat), `cartoon`
and `night` are classical image operations, `prompt-card` and `palette` render a prompt's words and
colours. Pure functions of their inputs; the server (server.py) runs them in worker threads.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps

from arena.images import encode_png, open_image

EDIT_MODELS = ("identity", "cartoon", "night")
GENERATION_MODELS = ("prompt-card", "palette")
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
