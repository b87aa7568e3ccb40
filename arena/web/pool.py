"""The pool a server draws battles from: challenges, blind derivatives of successful outputs, vote counts, uncertainty."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from arena import store
from arena.challenges import Challenge, load_challenges
from arena.config import Settings
from arena.derivatives import box_for_challenge, box_name, make_derivative, save_view
from arena.errors import ArenaError, ImageError
from arena.sampling import Output, order_uncertainty
from arena.store import votepath
from arena.web.options import WebOptions

log = logging.getLogger("arena.web")


@dataclass(frozen=True)
class ChallengeCard:
    """What a battle shows of its challenge (never anything about models)."""

    slug: str
    title: str
    task: str
    category: str
    prompt: str
    prompt_format: str
    source_view: str | None  # derivative sha256 of an edit's source image


@dataclass(frozen=True)
class Pool:
    """An immutable snapshot; the server swaps in a new one every refresh_s."""

    challenges: dict[str, ChallengeCard]
    outputs: tuple[Output, ...]
    challenge_votes: dict[str, int] = field(default_factory=dict)
    uncertainty: dict[str, dict[tuple[str, str], float]] = field(
        default_factory=dict
    )  # by challenge


def _ingest(
    engine: sa.Engine,
    data_dir: Path,
    items: list[tuple[str, Path, tuple[int, int]]],
    known: dict,
    options: WebOptions,
) -> None:
    """Make the missing derivatives of (original sha256, file, box) items."""
    rows = []
    directory = data_dir / "derivatives"
    for sha, path, box in items:
        if (sha, box_name(box)) in known:
            continue
        try:
            view = save_view(
                directory, make_derivative(path.read_bytes(), box, options.webp_quality), box
            )
        except (ImageError, OSError) as exc:
            log.warning(
                "not shown in battles: %s (%s)", path.name, exc
            )  # never shown, like a failure
            continue
        row = {
            "original_sha256": sha,
            "box": box_name(box),
            "sha256": view.sha256,
            "path": str(view.path.relative_to(data_dir)),
            "width": view.width,
            "height": view.height,
            "size_bytes": view.size_bytes,
        }
        known[(sha, row["box"])] = row
        rows.append(row)
    votepath.add_derivatives(engine, rows)


def load_pool(engine: sa.Engine, settings: Settings, options: WebOptions) -> Pool:
    """Read challenges and outputs, make any missing derivative (once, at ingestion), and snapshot."""
    import hashlib

    challenges: list[Challenge] = load_challenges(
        settings.challenges_dir, list(settings.challenges) or None
    )
    boxes = {c.slug: box_for_challenge(c, options.box_px) for c in challenges}
    known = votepath.derivative_map(engine)
    outputs = [o for o in votepath.successful_outputs(engine) if o["challenge"] in boxes]
    sources = {}
    for c in challenges:
        if c.source_images:
            source = c.source_images[0]
            sources[c.slug] = (hashlib.sha256(source.read_bytes()).hexdigest(), source)
    _ingest(
        engine,
        settings.data_dir,
        [(o["image_sha256"], settings.data_dir / o["path"], boxes[o["challenge"]]) for o in outputs]
        + [(sha, path, boxes[slug]) for slug, (sha, path) in sources.items()],
        known,
        options,
    )
    cards = {}
    for c in challenges:
        source = (
            known.get((sources[c.slug][0], box_name(boxes[c.slug]))) if c.slug in sources else None
        )
        if c.slug in sources and source is None:
            continue  # an edit whose source cannot be shown cannot be judged
        cards[c.slug] = ChallengeCard(
            slug=c.slug,
            title=c.title,
            task=c.kind,
            category=c.category,
            prompt=c.prompt,
            prompt_format=c.prompt_format,
            source_view=source["sha256"] if source else None,
        )
    shown = tuple(
        Output(
            challenge=o["challenge"],
            model=o["model"],
            provider=o["provider"],
            image=o["image_sha256"],
            view=known[(o["image_sha256"], box_name(boxes[o["challenge"]]))]["sha256"],
        )
        for o in outputs
        if o["challenge"] in cards and (o["image_sha256"], box_name(boxes[o["challenge"]])) in known
    )
    counts, uncertainty = _vote_state(engine)
    by_challenge = {slug: uncertainty.get(card.task, {}) for slug, card in cards.items()}
    return Pool(
        challenges=cards,
        outputs=shown,
        challenge_votes=counts,
        uncertainty=by_challenge,
    )


def _vote_state(engine: sa.Engine) -> tuple[dict[str, int], dict[str, dict]]:
    """Votes per challenge, and per task how uncertain each rated pair's order is (unflagged votes
    only). Both are counted by the database: every refresh would otherwise read every vote."""
    from arena.ratings import RatingOptions, compute_boards_from_counts

    counts = store.count_votes(engine, "challenge")
    if not counts:
        return {}, {}
    uncertainty = {}
    try:
        boards = compute_boards_from_counts(
            store.read_pair_counts(engine),
            RatingOptions(intervals="closed_form", bootstrap_rounds=1),
        )
    except (ArenaError, ValueError) as exc:
        log.warning("ratings unavailable for sampling: %s", exc)
        return counts, {}
    for (task, _), board in boards.items():
        rated = board.dropna(subset=["rating", "lower", "upper"])
        uncertainty[task] = order_uncertainty(
            {
                str(r.model): (float(r.rating), float(r.lower), float(r.upper))
                for r in rated.itertuples()
            }
        )
    return counts, uncertainty
