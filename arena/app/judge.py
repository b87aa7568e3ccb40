"""`arena judge`: ask one configured judge about pairs of outputs of the same challenge, twice with
the sides swapped, and store each finished comparison as a vote of voter kind judge:NAME.

The loop: choose a batch of comparisons where the judge's own board is least certain
(sampling.choose_comparisons), ask them (the judge's rate and concurrency limits; 429s retried
as the harness retries a provider's), refit the judge's board, choose again; until --pairs, the
budget, or every pair is settled or judged. Every call attempt is stored as it ends, so a rerun
(after Ctrl-C, a budget stop, failures) continues where this one stopped and never pays twice for
a verdict it has: a comparison whose "ab" call succeeded asks only "ba".
"""

from __future__ import annotations

import asyncio
import itertools
import mimetypes
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from arena import sampling, store
from arena.challenges import Challenge, load_challenges
from arena.config import JudgeConfig, Settings
from arena.errors import ArenaError, ProviderError, VoteDataError
from arena.judges import Judge, JudgeRequest, make_judge
from arena.limits import ProviderLimiter
from arena.providers.base import InputImage
from arena.store.judging import ORDERS, JudgeProgress
from arena.store.votepath import successful_outputs

# The board a judge's pairs are chosen on: quick closed-form intervals, refit after every batch.
BOARD_OPTIONS = {"intervals": "closed_form", "bootstrap_rounds": 1}
MIN_BATCH = 4  # comparisons per batch at least; more with more concurrency (two calls each)
# In comparison terms (a sorts first), the verdict of a call that showed a first ("ab") or b first.
TO_COMPARISON = {
    "ab": {"first": "a", "second": "b", "tie": "tie", "both_bad": "both_bad"},
    "ba": {"first": "b", "second": "a", "tie": "tie", "both_bad": "both_bad"},
}


class JudgeInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during `arena judge`; everything recorded so far is kept."""

    note = "every finished call is stored; run `arena judge` again to continue"


@dataclass
class JudgeSummary:
    """What one `arena judge` did: comparisons finished (votes stored), calls, failures, cost."""

    judge: str
    voter: str
    comparisons: int = 0  # finished this time: a vote stored
    calls: int = 0
    succeeded: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    cost_usd: float = 0.0
    stopped: str = ""
    candidates: int = 0  # comparisons there are (pairs of outputs of one challenge)
    judged_total: int = 0  # of those, with this judge's vote, after this run
    unsettled_pairs: int = 0  # pairs of models (or routes) whose interval is still wide
    messages: dict[str, str] = field(default_factory=dict)  # failure class -> its first message

    def as_dict(self) -> dict:
        return {
            "judge": self.judge,
            "voter": self.voter,
            "comparisons": self.comparisons,
            "calls": self.calls,
            "succeeded": self.succeeded,
            "failures": dict(sorted(self.failures.items())),
            "cost_usd": round(self.cost_usd, 6),
            "stopped": self.stopped,
            "candidates": self.candidates,
            "judged_total": self.judged_total,
            "unsettled_pairs": self.unsettled_pairs,
            "messages": dict(sorted(self.messages.items())),
        }


def pick_judge(settings: Settings, name: str | None) -> JudgeConfig:
    """The judge to ask: the one named, or the only one configured."""
    if not settings.judges:
        raise ArenaError(
            f"no judge configured in {settings.source}: add a [judges.NAME] table (see docs/judges.md)"
        )
    if name is None:
        if len(settings.judges) > 1:
            raise ArenaError(
                f"several judges are configured ({', '.join(sorted(settings.judges))}): "
                "pick one with --judge NAME"
            )
        return next(iter(settings.judges.values()))
    if name not in settings.judges:
        raise ArenaError(
            f"--judge {name!r}: no such judge in {settings.source} "
            f"(configured: {', '.join(sorted(settings.judges))})"
        )
    return settings.judges[name]


def build_comparisons(judge: str, outputs: list[dict], known: set[str]) -> dict[str, dict]:
    """Every pair of outputs of one challenge from different models, or from one model on two
    providers (route pairs), keyed by comparison id; a and b in image order. Outputs of a
    challenge no longer in challenges_dir are left out (its prompt is gone)."""
    by_challenge: dict[str, dict[tuple, dict]] = {}
    for output in outputs:
        if output["challenge"] in known:
            key = (output["model"], output["provider"], output["image_sha256"])
            by_challenge.setdefault(output["challenge"], {})[key] = output
    comparisons: dict[str, dict] = {}
    for challenge, found in sorted(by_challenge.items()):
        for (_, x), (_, y) in itertools.combinations(sorted(found.items()), 2):
            same_route = (x["model"], x["provider"]) == (y["model"], y["provider"])
            if same_route or x["image_sha256"] == y["image_sha256"]:
                continue
            a, b = sorted((x, y), key=lambda o: o["image_sha256"])
            key = store.comparison_id(judge, challenge, a["image_sha256"], b["image_sha256"])
            comparisons.setdefault(
                key,
                {
                    "key": key,
                    "challenge": challenge,
                    "task": a["task"],
                    "category": a.get("category") or "",
                    "model_a": a["model"],
                    "provider_a": a["provider"],
                    "image_a": a["image_sha256"],
                    "path_a": a["path"],
                    "model_b": b["model"],
                    "provider_b": b["provider"],
                    "image_b": b["image_sha256"],
                    "path_b": b["path"],
                },
            )
    return comparisons


def judge_outputs(
    settings: Settings,
    *,
    judge: str | None = None,
    run: str | None = None,
    max_cost_usd: float | None = None,
    pairs: int | None = None,
    seed: int = 0,
) -> JudgeSummary:
    """Ask the judge about comparisons of the outputs (of one run with `run`: an id or "last")."""
    config = pick_judge(settings, judge)
    config.api_key()  # a missing key is one clear line before anything is read or sent
    engine = store.open_engine(settings.database_url)
    run_id = store.get_run(engine, run).id if run else None
    challenges = {c.slug: c for c in load_challenges(settings.challenges_dir)}
    comparisons = build_comparisons(
        config.name, successful_outputs(engine, run_id), set(challenges)
    )
    session = _Session(
        settings, config, engine, challenges, comparisons, max_cost_usd, pairs, random.Random(seed)
    )
    try:
        asyncio.run(session.run())
    except KeyboardInterrupt:
        raise JudgeInterrupted() from None
    return session.finish()


class _Session:
    """One `arena judge` invocation's state: what is finished, reserved, spent and tried."""

    def __init__(
        self,
        settings: Settings,
        config: JudgeConfig,
        engine,
        challenges: dict[str, Challenge],
        comparisons: dict[str, dict],
        max_cost_usd: float | None,
        pairs: int | None,
        rng: random.Random,
    ) -> None:
        self.settings, self.config, self.engine = settings, config, engine
        self.challenges, self.comparisons = challenges, comparisons
        self.max_cost_usd, self.pairs, self.rng = max_cost_usd, pairs, rng
        self.summary = JudgeSummary(judge=config.name, voter=config.voter)
        self.summary.candidates = len(comparisons)
        self.progress: JudgeProgress = store.judge_progress(engine, config.name)
        self.human_pairs = self._human_pairs()
        self.tried: set[str] = set()  # asked (or begun) this time: not chosen again until a rerun
        self.started = 0
        self.reserved_usd = 0.0
        self.halt: str | None = None  # why no further call starts (budget, a rejected key)
        self.ratings: sampling.Ratings = {}
        self._sources: dict[str, tuple[InputImage, ...]] = {}

    # --- the loop ------------------------------------------------------------------------------

    async def run(self) -> None:
        config = self.config
        timeout = httpx.Timeout(config.timeout_s, connect=min(30.0, config.timeout_s))
        limits = httpx.Limits(max_connections=config.max_concurrency + 2)
        batch_size = max(MIN_BATCH, 2 * config.max_concurrency)
        async with httpx.AsyncClient(timeout=timeout, limits=limits, trust_env=False) as client:
            judge = make_judge(config, client)
            limiter = ProviderLimiter(config.rate_limit_per_s, config.max_concurrency)
            while True:
                self.ratings = await asyncio.to_thread(self._board)
                if self.halt:
                    self.summary.stopped = self.halt
                    return
                if self.pairs is not None and self.started >= self.pairs:
                    self.summary.stopped = f"--pairs {self.pairs} reached"
                    return
                candidates = self._candidates(self.progress.finished | self.tried)
                if not candidates:
                    self.summary.stopped = self._nothing_left()
                    return
                limit = batch_size
                if self.pairs is not None:
                    limit = min(limit, self.pairs - self.started)
                batch = sampling.choose_comparisons(
                    candidates,
                    self.ratings,
                    stop_interval_elo=config.stop_interval_elo,
                    limit=limit,
                    rng=self.rng,
                )
                if not batch:
                    self.summary.stopped = f"every pair is settled (its interval is under {config.stop_interval_elo:g} Elo)"
                    return
                for comparison in batch:
                    self.tried.add(comparison.key)
                self.started += len(batch)
                await asyncio.gather(*(self._compare(judge, limiter, c.key) for c in batch))

    def _candidates(self, skip: set[str]) -> list[sampling.Comparison]:
        """The comparisons not in `skip`, named for the pair choice."""
        return [
            sampling.Comparison(
                key=key,
                task=c["task"],
                board="route" if c["model_a"] == c["model_b"] else "model",
                unit_a=_unit(c, "a"),
                unit_b=_unit(c, "b"),
                human_voted=frozenset((c["image_a"], c["image_b"])) in self.human_pairs,
            )
            for key, c in self.comparisons.items()
            if key not in skip
        ]

    def _nothing_left(self) -> str:
        left = [k for k in self.comparisons if k not in self.progress.finished]
        if not self.comparisons:
            return "nothing to judge: no challenge has outputs of two models (or routes) yet"
        if not left:
            return "every comparison is judged"
        return "every comparison was asked once this time; rerun to retry the failed ones"

    def finish(self) -> JudgeSummary:
        summary = self.summary
        summary.judged_total = sum(k in self.progress.finished for k in self.comparisons)
        summary.unsettled_pairs = sampling.unsettled_pairs(
            self._candidates(self.progress.finished), self._board(), self.config.stop_interval_elo
        )
        return summary

    # --- one comparison, one call --------------------------------------------------------------

    async def _compare(self, judge: Judge, limiter: ProviderLimiter, key: str) -> None:
        comparison = self.comparisons[key]
        needed = [o for o in ORDERS if (key, o) not in self.progress.verdicts]
        await asyncio.gather(*(self._ask(judge, limiter, comparison, o) for o in needed))
        ab = self.progress.verdicts.get((key, "ab"))
        ba = self.progress.verdicts.get((key, "ba"))
        if ab is None or ba is None:
            return  # a call failed or was not started: the comparison waits for a rerun
        stored = await asyncio.to_thread(
            store.record_judge_vote,
            self.engine,
            judge=self.config.name,
            comparison=comparison,
            ab=ab,
            ba=ba,
        )
        self.progress.finished.add(key)
        if stored:
            self.summary.comparisons += 1

    async def _ask(
        self, judge: Judge, limiter: ProviderLimiter, comparison: dict, order: str
    ) -> None:
        config, key = self.config, (comparison["key"], order)
        async with limiter.slot():
            for retry in itertools.count():
                if self.halt or not self._reserve():
                    return
                try:
                    request = self._request(comparison, order)
                    limiter_wait_ms = await limiter.pace()
                    started_at = datetime.now(UTC)
                    reply, error = None, None
                    try:
                        reply = await judge.judge(request)
                    except ProviderError as exc:
                        error = exc
                finally:
                    self.reserved_usd -= config.price_usd_per_call
                status = reply.status_code if reply else error.status_code
                # A judge bills what it answered: a success, or a 2xx it answered unreadably.
                answered = status is not None and 200 <= status < 300
                cost_usd = config.price_usd_per_call if answered else 0.0
                self.progress.calls[key] = attempt = self.progress.calls.get(key, 0) + 1
                verdict = TO_COMPARISON[order][reply.verdict] if reply else None
                row = {
                    "judge": config.name,
                    "model_id": config.model_id,
                    "comparison": comparison["key"],
                    "order": order,
                    "attempt": attempt,
                    "started_at": started_at,
                    **{k: comparison[k] for k in _CALL_FIELDS},
                    "ok": reply is not None,
                    "failure_class": error.failure_class if error else None,
                    "status_code": status,
                    "error": str(error)[:1000] if error else None,
                    "duration_ms": reply.duration_ms if reply else None,
                    "ttfb_ms": reply.ttfb_ms if reply else None,
                    "limiter_wait_ms": limiter_wait_ms,
                    "cost_usd": cost_usd,
                    "verdict": verdict,
                    "reason": reply.reason if reply else None,
                }
                await asyncio.to_thread(store.record_judge_call, self.engine, row)
                summary = self.summary
                summary.calls += 1
                summary.cost_usd += cost_usd
                if reply is not None:
                    summary.succeeded += 1
                    self.progress.verdicts[key] = (verdict, reply.reason)
                    return
                summary.failures[error.failure_class] = (
                    summary.failures.get(error.failure_class, 0) + 1
                )
                summary.messages.setdefault(
                    error.failure_class, str(error).removeprefix(f"{error.failure_class}: ")
                )
                if error.failure_class == "rate_limited" and retry < config.max_retries:
                    await asyncio.sleep(
                        min(error.retry_after_s or 2.0**retry, config.max_retry_after_s)
                    )
                    continue
                if error.failure_class == "auth":
                    self.halt = f"the judge rejected the key: {error}"
                return

    def _reserve(self) -> bool:
        """Whether one more call fits the budget (calls in flight counted); reserves it if so."""
        price = self.config.price_usd_per_call
        spent_usd = self.summary.cost_usd + self.reserved_usd
        if self.max_cost_usd is not None and spent_usd + price > self.max_cost_usd + 1e-12:
            self.halt = f"--max-cost ${self.max_cost_usd:g} reached"
            return False
        self.reserved_usd += price
        return True

    def _request(self, comparison: dict, order: str) -> JudgeRequest:
        challenge = self.challenges[comparison["challenge"]]
        a = _read_image(self.settings.data_dir / comparison["path_a"], "a")
        b = _read_image(self.settings.data_dir / comparison["path_b"], "b")
        first, second = (a, b) if order == "ab" else (b, a)
        return JudgeRequest(
            prompt=challenge.prompt,
            task=challenge.kind,
            first=first,
            second=second,
            sources=self._sources_of(challenge),
        )

    def _sources_of(self, challenge: Challenge) -> tuple[InputImage, ...]:
        if challenge.slug not in self._sources:
            self._sources[challenge.slug] = tuple(
                _read_image(path, path.name) for path in challenge.source_images
            )
        return self._sources[challenge.slug]

    # --- reads ---------------------------------------------------------------------------------

    def _human_pairs(self) -> set[frozenset]:
        votes = store.read_votes(self.engine, extra_columns=True)
        return {
            frozenset((left, right))
            for left, right in zip(votes["image_left"], votes["image_right"], strict=True)
            if left and right
        }

    def _board(self) -> sampling.Ratings:
        return judge_ratings(
            store.read_pair_counts(self.engine, voters=self.config.voter, by="route")
        )


def judge_ratings(votes) -> sampling.Ratings:
    """A judge's boards per task as sampling.Ratings: ("model", task) from the votes between two
    models, ("route", task) from every vote with its sides named model@provider. `votes` are pair
    counts with the providers (store.read_pair_counts(engine, by="route")).

    A route pair is one model against itself on a model board, which would pull that model's
    interval to nothing: it is left out of the model fit and rated on the route board only.
    """
    from arena.ratings import RatingOptions, compute_boards_from_counts

    if votes.empty:
        return {}
    options = RatingOptions(**BOARD_OPTIONS)
    ratings: dict = {}
    model_votes = votes[votes["model_left"] != votes["model_right"]]
    route_votes = votes.assign(
        model_left=votes["model_left"] + "@" + votes["provider_left"],
        model_right=votes["model_right"] + "@" + votes["provider_right"],
    )
    for board, frame in (("model", model_votes), ("route", route_votes)):
        if frame.empty:
            continue
        try:
            boards = compute_boards_from_counts(frame, options)
        except VoteDataError:
            continue
        for (task, _), table in boards.items():
            ratings[(board, task)] = {
                row.model: (row.rating, row.lower, row.upper)
                for row in table.itertuples(index=False)
            }
    return ratings


_CALL_FIELDS = (
    "challenge",
    "task",
    "category",
    "model_a",
    "provider_a",
    "image_a",
    "model_b",
    "provider_b",
    "image_b",
)


def _unit(comparison: dict, side: str) -> str:
    """The name a side has on its board: the model, or model@provider for a route pair."""
    model = comparison[f"model_{side}"]
    if comparison["model_a"] == comparison["model_b"]:
        return f"{model}@{comparison[f'provider_{side}']}"
    return model


def _read_image(path, name: str) -> InputImage:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArenaError(f"{path}: cannot read an image to judge ({exc.strerror})") from None
    return InputImage(data=data, mime=mimetypes.guess_type(path.name)[0] or "image/png", name=name)
