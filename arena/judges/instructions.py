"""The judging instructions every protocol sends, in order, and the tolerant reading of the answer.

The question is the same whatever the protocol: the instructions, the prompt, for an edit the
source image(s) ("Source 1", ...), then the two candidates ("Candidate 1", "Candidate 2"), each
image right after its label. The judge answers with a JSON object
{"winner": "1" | "2" | "tie" | "both_bad", "reason": "<one sentence>"}; parse_verdict also takes
that object inside a code fence or among other words, and a bare "1" or "2". Anything else is a
bad_response: a guess would put a vote in the board that the judge never cast.
"""

from __future__ import annotations

import json
import re

from arena.errors import ProviderError
from arena.providers.base import InputImage

MAX_REASON_CHARS = 300  # a judge that writes an essay keeps its first few lines only

INSTRUCTIONS = """\
You are judging an image {what} benchmark. Two candidate images were made for the same prompt{by}.
Decide which candidate is better: how well it follows the prompt{keep}, then image quality \
(artifacts, anatomy, text rendering, coherence). Ignore which one is shown first.
Answer with only a JSON object, no other text:
{{"winner": "1" or "2" or "tie" or "both_bad", "reason": "<one sentence>"}}
Use "tie" when they are equally good, "both_bad" when neither follows the prompt."""

_WHAT = {"edit": "editing", "text-to-image": "generation"}
WINNERS = {"1": "first", "2": "second", "tie": "tie", "both_bad": "both_bad"}
_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_BARE = re.compile(r"^\W*(?:candidate\s*|image\s*)?([12])\W*$", re.IGNORECASE)


def instructions_text(task: str, sources: int) -> str:
    """The instructions for one task; `sources` is how many source images an edit shows."""
    edit = task == "edit"
    return INSTRUCTIONS.format(
        what=_WHAT.get(task, task),
        by=(f" by editing the source image{'s' if sources > 1 else ''}" if edit else ""),
        keep=(" while keeping what the prompt does not ask to change" if edit else ""),
    )


def question_parts(
    task: str, prompt: str, first: InputImage, second: InputImage, sources=()
) -> list[str | InputImage]:
    """The message in order: texts and images, each image after its label."""
    parts: list[str | InputImage] = [instructions_text(task, len(sources)), f"Prompt: {prompt}"]
    for i, source in enumerate(sources, 1):
        parts += [f"Source {i} (the image to edit):", source]
    parts += ["Candidate 1:", first, "Candidate 2:", second]
    parts.append("Which candidate is better? Answer with the JSON object only.")
    return parts


def parse_verdict(text: str) -> tuple[str, str]:
    """(verdict in the order shown, reason) from the judge's answer; bad_response otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ProviderError("bad_response", "the judge's answer is empty")
    stripped = text.strip()
    bare = _BARE.match(stripped)
    if bare:
        return WINNERS[bare.group(1)], ""
    for candidate in [*(m.group(1) for m in _FENCE.finditer(stripped)), stripped]:
        data = _first_object(candidate)
        if data is not None:
            return _from_object(data, stripped)
    raise ProviderError("bad_response", f"the judge's answer has no verdict: {_excerpt(stripped)}")


def _first_object(text: str) -> dict | None:
    """The first JSON object in the text, wherever it starts."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _from_object(data: dict, text: str) -> tuple[str, str]:
    winner = data.get("winner")
    key = str(winner).strip().lower().replace(" ", "_") if winner is not None else ""
    key = key.removeprefix("candidate_").removeprefix("image_")
    if isinstance(winner, bool) or key not in WINNERS:
        raise ProviderError(
            "bad_response", f"the judge's winner is not 1, 2, tie or both_bad: {_excerpt(text)}"
        )
    reason = data.get("reason")
    reason = " ".join(str(reason).split())[:MAX_REASON_CHARS] if reason is not None else ""
    return WINNERS[key], reason


def _excerpt(text: str) -> str:
    return " ".join(text.split())[:120]
