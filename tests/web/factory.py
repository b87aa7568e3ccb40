"""Stores with outputs for the web tests: synthetic rows and image files, fast and with telling names."""

from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, PngImagePlugin
from starlette.testclient import TestClient

from arena import store
from arena.config import parse_settings
from arena.providers import protocol_facts
from arena.store.tables import Attempt, StoredImage
from arena.web.options import WebOptions

BASE = "http://testserver"
TEST_OPTIONS = WebOptions(
    secret="test-secret",
    ip_per_min=0,
    session_per_min=0,
    min_dwell_s=0.0,
    box_px=128,
    refresh_s=3600,
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-output" / "screenshots"


class Voter:
    """One browser-like client: its own cookie jar, CSRF token and Origin header."""

    def __init__(self, app, base_url: str = BASE) -> None:
        self.client = TestClient(app, base_url=base_url)
        self.base_url = base_url
        self.csrf = self.client.get("/api/session").json()["csrf_token"]

    @property
    def headers(self) -> dict:
        return {"Origin": self.base_url, "X-CSRF-Token": self.csrf}

    def battle(self):
        return self.client.post("/api/battles", headers=self.headers)

    def vote(self, battle_id: str, choice: str = "a"):
        return self.client.post(
            "/api/votes", headers=self.headers, json={"battle_id": battle_id, "choice": choice}
        )


# Names that must never show up before a vote; long and odd enough that no page text has them by chance.
MODELS = {
    "zephyr-xl-9000": "acme-cloud",
    "quokka-diffusion": "bluefin-ai",
    "marmot-edit-pro": "acme-cloud",
}
BROKEN_MODEL = "brokenmodel-zz"  # only failed attempts: must never be shown


def write_challenges(directory: Path, prompt: str = "a red fox in fresh snow") -> Path:
    """One text-to-image and one edit challenge (the edit's source is 300x200)."""
    (directory / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (300, 200), (90, 120, 150)).save(directory / "images" / "source.png")
    (directory / "fox.toml").write_text(
        f'slug = "fox"\ntitle = "Fox <b>in snow</b>"\nkind = "text-to-image"\ncategory = "photo"\n'
        f'aspect_ratio = "16:9"\nprompt = """{prompt}"""\n'
    )
    (directory / "hat.toml").write_text(
        'slug = "hat"\ntitle = "Add a hat"\nkind = "edit"\ncategory = "edit"\nprompt = "give the scene a hat"\n'
        'source_images = ["images/source.png"]\n'
    )
    return directory


def config_table(
    root: Path, db_url: str, challenges_dir: Path, models: dict[str, str] | None = None
) -> dict:
    """The arena.toml content (as a table) of the telling models, a broken one and a local floor."""
    models = MODELS if models is None else models
    providers = {
        p: {"protocol": "openai", "base_url": "http://127.0.0.1:9"} for p in set(models.values())
    }
    providers["local"] = {"protocol": "local"}
    table = {
        name: {"tasks": ["text-to-image", "edit"], "providers": {provider: {"model_id": name}}}
        for name, provider in models.items()
    }
    table[BROKEN_MODEL] = {
        "tasks": ["text-to-image", "edit"],
        "providers": {"acme-cloud": {"model_id": "b"}},
    }
    table["floor-model"] = {
        "tasks": ["text-to-image", "edit"],
        "providers": {"local": {"model_id": "identity"}},
    }
    return {
        "data_dir": str(root / "data"),
        "database_url": db_url,
        "challenges_dir": str(challenges_dir),
        "providers": providers,
        "models": table,
    }


def settings_for(
    root: Path, db_url: str, challenges_dir: Path, models: dict[str, str] | None = None
):
    return parse_settings(
        config_table(root, db_url, challenges_dir, models), "<test>", root, protocol_facts()
    )


def write_toml(path: Path, table: dict) -> Path:
    """A TOML file of a config table (strings, lists and nested tables are all it needs)."""
    lines = []

    def emit(prefix: str, value: dict) -> None:
        scalars = {k: v for k, v in value.items() if not isinstance(v, dict)}
        if prefix:
            lines.append(f"[{prefix}]")
        lines.extend(f"{k} = {json.dumps(v)}" for k, v in scalars.items())
        for k, v in value.items():
            if isinstance(v, dict):
                emit(f'{prefix}."{k}"' if prefix else f'"{k}"', v)

    emit("", table)
    path.write_text("\n".join(lines) + "\n")
    return path


def telling_png(model: str, seed: int, size: tuple[int, int]) -> bytes:
    """A PNG that shouts its maker: tEXt chunks, an iTXt XMP packet and an ICC profile naming the model."""
    from PIL import ImageCms

    image = Image.new("RGB", size, ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256))
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", f"model: {model}")
    info.add_itxt("XML:com.adobe.xmp", f"<x:xmpmeta><tool>{model}</tool></x:xmpmeta>")
    buffer = io.BytesIO()
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image.save(buffer, format="PNG", pnginfo=info, icc_profile=icc)
    return buffer.getvalue()


def fill_store(settings, samples: int = 2, challenges=("fox", "hat")) -> dict:
    """Successful outputs of every configured model (and the floor) per challenge, plus failed ones of BROKEN_MODEL."""
    engine = store.open_engine(settings.database_url)
    images_dir = settings.data_dir / "images"
    items = []
    seed = 0
    sizes = [(256, 256), (336, 192), (128, 128)]  # three aspect ratios, small enough to be quick
    from arena.images import inspect_image, save_image

    for challenge in challenges:
        task = "edit" if challenge == "hat" else "text-to-image"
        for model, route in ((m, settings.models[m].routes[0]) for m in settings.models):
            for _ in range(samples):
                seed += 1
                ok = model != BROKEN_MODEL
                data = telling_png(model, seed, sizes[seed % len(sizes)])
                info = inspect_image(data, full=True)
                # Failed attempts get a stored file too: only their outcome may keep them out of battles.
                path = save_image(images_dir, data, info)
                stored = StoredImage(
                    sha256=info.sha256,
                    path=str(path.relative_to(settings.data_dir)),
                    format=info.format,
                    width=info.width,
                    height=info.height,
                    size_bytes=info.size_bytes,
                )
                attempt = Attempt(
                    run_id="r1",
                    job_id=None,
                    attempt=1,
                    challenge=challenge,
                    task=task,
                    category="c",
                    model=model,
                    provider=route.provider,
                    ok=ok,
                    failure_class=None if ok else "server_error",
                    image_sha256=info.sha256,
                )
                items.append((attempt, stored, False))
    store.record_results(engine, items)
    engine.dispose()
    return {"attempts": len(items)}
