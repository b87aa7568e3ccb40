"""The `local` protocol: the OpenAI images protocol, spoken to arena's own baseline server."""

from __future__ import annotations

from arena.params import SHAPE_AS_SIZE, Handling
from arena.providers.openai import OpenAIAdapter

MAX_SIDE_PX = 2048  # the largest side the baseline server draws (it answers 400 beyond)
MIN_SIDE_PX = 16


class LocalAdapter(OpenAIAdapter):
    """The OpenAI adapter with the local server's facts: no key, a baseline, started on demand."""

    protocol = "local"
    needs_key = False
    shape_form = "size"
    baseline = True
    default_base_url = ""  # no base_url: arena starts the server on loopback for the run
    parameters = {
        **SHAPE_AS_SIZE,
        "n": Handling("passthrough", "n"),
        "output_format": Handling(
            "passthrough", "output_format", "the baselines always answer PNG"
        ),
        "response_format": Handling("passthrough", "response_format"),
        "stream": Handling("passthrough", "stream", "the baselines answer in one reply"),
        "images": Handling("renamed", "image[]", "multipart files"),
    }
    # Any WxH the server draws; computed sides are multiples of 16 as with most models.
    default_capabilities = {"size_multiple": 16, "min_px": MIN_SIDE_PX, "max_px": MAX_SIDE_PX}
