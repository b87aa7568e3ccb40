"""build_site(): the static report from the store: reads, digests, charts, pages and downloads on disk."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from arena import stats, store
from arena.challenges import load_challenges
from arena.config import CheckSettings, GatewaySettings
from arena.errors import ArenaError
from arena.ratings import RatingOptions, route_records
from arena.ratings.frames import frame_records
from arena.report import charts, downloads, formats, reads
from arena.report.digest import (
    AttemptDigest,
    TrafficDigest,
    VoteDigest,
    digest_attempts,
    digest_traffic,
    model_infos,
    ordered_tasks,
)
from arena.report.examples import EXAMPLE_TITLES, api_examples
from arena.report.pictures import Pictures
from arena.report.quality import CHECK_KINDS

MANIFEST = ".arena-site"
STATIC_DIR = Path(__file__).parent / "static"


@dataclass(frozen=True)
class BuildResult:
    out_dir: Path
    index: Path
    pages: int
    files: int


# --- the build -----------------------------------------------------------------------------------


class _Writer:
    """Writes files under the site root atomically and remembers them for the manifest."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.written: set[str] = set()

    def text(self, relative: str, content: str) -> None:
        self.bytes(relative, content.encode("utf-8"))

    def bytes(self, relative: str, content: bytes) -> None:
        path = self.out_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.read_bytes() == content:
            self.written.add(relative)
            return
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        self.written.add(relative)


def _resolve(source, data_dir, challenges_dir):
    """(settings or None, engine, data dir, challenges dir) from Settings or an engine."""
    if isinstance(source, sa.Engine):
        url = reads.engine_url(source)
        if data_dir is None and url.startswith("sqlite") and "///" in url:
            data_dir = Path(url.split("///", 1)[1]).parent
        return None, source, data_dir, challenges_dir
    engine = store.open_engine(source.database_url)
    return source, engine, data_dir or source.data_dir, challenges_dir or source.challenges_dir


def build_site(
    source,
    out_dir: str | Path = "reports",
    *,
    data_dir: Path | None = None,
    challenges_dir: Path | None = None,
    window_days: int = 30,
    stamp: datetime | None = None,
    parallel: bool | None = None,
) -> BuildResult:
    """Rebuild the static site in out_dir from the store of `source` (Settings, or an engine).

    Same store, same bytes: everything is ordered and every figure comes from the data, except the
    build stamp in index.html's footer. Every figure, chart, gallery and download comes from the
    benchmark's attempts; the gateway's (source traffic) only fill their own tables beside them. Files a previous build wrote and this one did not are removed;
    anything else in out_dir (a README) is left alone.
    """
    out_dir = Path(out_dir)
    (out_dir / "downloads").mkdir(parents=True, exist_ok=True)
    settings, engine, data_dir, challenges_dir = _resolve(source, data_dir, challenges_dir)
    url = reads.engine_url(engine)
    parallel = reads.can_fork(url) if parallel is None else parallel
    pool = None
    if parallel:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
        vote_future = pool.submit(reads.vote_worker, url, str(out_dir))
    try:
        checks = reads.read_checks(engine)
        attempts = reads.read_attempts(engine)
        downloads.write_generations_csv(attempts, out_dir / "downloads" / "generations.csv")
        attempt_digest = digest_attempts(attempts, window_days)
        pictures = Pictures(out_dir, data_dir, store.read_image_paths(engine))
        snapshots = [run.settings_json for run in reversed(store.list_runs(engine))]
        del attempts
        gateway = settings.gateway if settings else GatewaySettings()
        traffic = digest_traffic(reads.read_traffic(engine), gateway.window_days)
        newest = attempt_digest.newest_images
        for sha in newest["image_sha256"] if len(newest) else ():
            pictures.of_sha(sha)  # thumbnails while the worker digests the votes
        vote_digest = vote_future.result() if pool else reads.vote_half(url, str(out_dir))
    finally:
        if pool:
            pool.shutdown()
    site = _Site(
        out_dir,
        settings,
        attempt_digest,
        vote_digest,
        model_infos(settings, snapshots),
        pictures,
        challenges_dir,
        window_days,
        traffic,
        checks,
    )
    return site.write(stamp or datetime.now(UTC))


class _Site:
    """Arranges the digests into page contexts and renders them."""

    def __init__(
        self,
        out_dir,
        settings,
        attempts: AttemptDigest,
        votes: VoteDigest,
        infos,
        pictures,
        challenges_dir,
        window_days,
        traffic: TrafficDigest | None = None,
        checks: pd.DataFrame | None = None,
    ) -> None:
        self.out = _Writer(out_dir)
        self.checks = checks
        self.settings = settings
        self.a, self.v = attempts, votes
        self.t = traffic or TrafficDigest()
        self.pictures = pictures
        self.window_days = window_days
        self.env = formats.environment()
        self.warnings: list[str] = []
        self.challenges = self._challenges(challenges_dir)
        rows = attempts.provider_rows
        names = (
            set(infos) | set(rows["model"]) | {m for b in votes.boards.values() for m in b["model"]}
        )
        names |= set(attempts.newest_images["model"]) if len(attempts.newest_images) else set()
        from arena.report.digest import ModelInfo

        self.infos = {n: infos.get(n, ModelInfo(n)) for n in names}
        self.model_slugs = {n: formats.slugify(n) for n in sorted(names)}
        providers = set(rows["provider"]) | (set(settings.providers) if settings else set())
        self.provider_slugs = {p: formats.slugify(p) for p in sorted(providers)}
        self.challenge_slugs = {c: formats.slugify(c) for c in sorted(self.challenges)}

    def _challenges(self, directory) -> dict[str, dict]:
        """Challenge slug -> what its page shows; files when readable, else what the data names."""
        found: dict[str, dict] = {}
        if directory is not None and Path(directory).is_dir():
            try:
                for c in load_challenges(Path(directory)):
                    found[c.slug] = {
                        "slug": c.slug,
                        "title": c.title,
                        "task": c.kind,
                        "category": c.category,
                        "prompt": c.prompt,
                        "notes": c.notes,
                        "attribution": c.attribution,
                        "sources": [self.pictures.of_file(p) for p in c.source_images],
                    }
            except ArenaError as exc:
                self.warnings.append(f"challenge files not read: {exc}")
        images = self.a.newest_images
        seen = set(images["challenge"]) if len(images) else set()
        seen |= set(self.v.challenge_records)
        for slug in sorted(seen - set(found)):
            found[slug] = {
                "slug": slug,
                "title": slug,
                "task": "",
                "category": "",
                "prompt": None,
                "notes": "",
                "attribution": "",
                "sources": [],
            }
        return found

    # --- per model figures -------------------------------------------------------------------

    def _fastest(self, model: str) -> tuple[str | None, float | None]:
        """The provider with the lowest median generation time for the model, and that median."""
        if not hasattr(self, "_fastest_by_model"):
            rows = self.a.provider_rows.dropna(subset=["p50_ms"]).sort_values(
                ["model", "p50_ms", "provider"]
            )
            first = rows.drop_duplicates("model")
            self._fastest_by_model = {
                m: (str(p), float(v))
                for m, p, v in zip(first["model"], first["provider"], first["p50_ms"], strict=True)
            }
        return self._fastest_by_model.get(model, (None, None))

    def _model_ref(self, name: str) -> dict:
        info = self.infos[name]
        return {"name": name, "slug": self.model_slugs[name], "baseline": info.baseline}

    def _any_ref(self, name: str) -> dict:
        """A model's reference, linked when the site has its page (a judge or a route may name
        a model the config no longer has)."""
        if name in self.infos:
            return self._model_ref(name)
        return {"name": name, "slug": None, "baseline": False}

    def _board_rows(self, task: str) -> list[dict]:
        rows = []
        for row in self.v.boards[task].itertuples(index=False):
            provider, p50 = self._fastest(row.model)
            rows.append(
                {
                    **self._model_ref(row.model),
                    **_rating_fields(row),
                    "note": row.note,
                    "group": int(row.group),
                    "fastest_provider": provider,
                    "p50_ms": p50,
                    "price_usd": self.infos[row.model].price_from_usd,
                }
            )
        return rows

    def _unrated(self, task: str) -> list[dict]:
        rated = set(self.v.boards[task]["model"]) if task in self.v.boards else set()
        images = self.a.newest_images
        tasks_seen = {}
        if len(images):
            for model, challenge in zip(images["model"], images["challenge"], strict=True):
                tasks_seen.setdefault(model, set()).add(
                    self.challenges.get(challenge, {}).get("task", "")
                )
        out = []
        for name in sorted(self.infos):
            does = task in self.infos[name].tasks or task in tasks_seen.get(name, set())
            if does and name not in rated:
                provider, p50 = self._fastest(name)
                out.append(
                    {
                        **self._model_ref(name),
                        "fastest_provider": provider,
                        "p50_ms": p50,
                        "price_usd": self.infos[name].price_from_usd,
                    }
                )
        return out

    def _scatter(self, task: str, kind: str) -> tuple[str, list[str]] | None:
        """The Elo vs cost (or vs speed) chart of a task and its Pareto front's slugs."""
        points = []
        for row in self._board_rows(task):
            x = (
                row["price_usd"]
                if kind == "cost"
                else (row["p50_ms"] / 1000 if row["p50_ms"] else None)
            )
            if x is None:
                continue
            points.append(
                charts.Point(
                    row["slug"],
                    row["name"],
                    x,
                    row["rating"],
                    None if formats.missing(row["lower"]) else row["lower"],
                    None if formats.missing(row["upper"]) else row["upper"],
                    row["baseline"],
                )
            )
        if len(points) < 2:
            return None  # one point has nothing to compare with
        title = f"{formats.TASK_TITLES.get(task, task)}: rating vs " + (
            "price" if kind == "cost" else "speed"
        )
        x_label = (
            "cheapest price per image, USD"
            if kind == "cost"
            else "median generation time through the fastest provider, s (log scale)"
        )
        svg = charts.rating_scatter(f"{kind}-{task}", points, x_label, title, log_x=kind == "speed")
        return svg, [p.slug for p in charts.pareto_front(points)]

    # --- pages -------------------------------------------------------------------------------

    def _render(self, relative: str, template: str, **context) -> None:
        root = "../" * relative.count("/")
        html = self.env.get_template(template).render(
            root=root, window_days=self.window_days, **context
        )
        self.out.text(relative, html)

    def write(self, stamp: datetime) -> BuildResult:
        out_dir = self.out.out_dir
        tasks = ordered_tasks(
            list(self.v.boards) + [t for i in self.infos.values() for t in i.tasks]
        )
        scatters = {
            (task, kind): self._scatter(task, kind)
            for task in self.v.boards
            for kind in ("cost", "speed")
        }
        history = {
            task: charts.rating_history(
                f"history-{task}",
                series,
                f"{formats.TASK_TITLES.get(task, task)}: rating over time (leading models)",
            )
            for task, series in self.v.history.items()
            if series
        }
        latency = (
            charts.latency_distribution("latency", self.a.latencies, "Generation time per provider")
            if self.a.latencies
            else None
        )
        newest = max([t for t in (self.a.window_end, self.v.newest) if t is not None], default=None)
        common = {
            "data_through": newest,
            "window_start": self.a.window_start,
            "window_end": self.a.window_end,
            "votes_total": self.v.total,
        }
        providers = self._provider_summaries()
        pages = 0
        self._render(
            "index.html",
            "index.html",
            tasks=tasks,
            boards={t: self._board_rows(t) for t in self.v.boards},
            board_messages={t: b.attrs.get("message", "") for t, b in self.v.boards.items()},
            unrated={t: self._unrated(t) for t in tasks},
            scatters=scatters,
            history=history,
            latency=latency,
            providers=providers,
            challenges=self._challenge_list(),
            attempts=self.a.attempts,
            stamp=stamp.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
            min_votes=RatingOptions().min_votes,
            warnings=self.warnings,
            **common,
        )
        pages += 1
        self._render(
            "methodology.html",
            "methodology.html",
            votes=self.v,
            options=RatingOptions(),
            providers=providers,
            **common,
        )
        pages += 1
        for name in sorted(self.infos):
            self._model_page(name, scatters, common)
            pages += 1
        for slug in sorted(self.challenges):
            self._challenge_page(slug, common)
            pages += 1
        for provider in sorted(self.provider_slugs):
            self._provider_page(provider, providers, common)
            pages += 1
        quality = self._quality_context()
        self._render("quality.html", "quality.html", **quality, **common)
        pages += 1
        extras = {}
        for name in self.infos:
            provider, p50 = self._fastest(name)
            extras[name] = {
                "baseline": self.infos[name].baseline,
                "fastest_provider": provider,
                "p50_ms_fastest": p50,
                "price_usd_from": self.infos[name].price_from_usd,
            }
        board = downloads.leaderboard(
            self.v.boards,
            extras,
            options=RatingOptions(),
            data_through=None if newest is None else pd.Timestamp(newest).isoformat(),
        )
        files = {
            "leaderboard": board,
            "quality": downloads.quality(quality),
            "manifest": downloads.manifest(),
        }
        for name, data in files.items():
            self.out.text(f"downloads/{name}.json", json.dumps(data, indent=2, default=str) + "\n")
        for static in sorted(STATIC_DIR.iterdir()):
            self.out.bytes(f"static/{static.name}", static.read_bytes())
        written = (
            self.out.written
            | self.pictures.written
            | {"downloads/votes.csv", "downloads/generations.csv"}
        )
        self._clean(out_dir, written)
        return BuildResult(
            out_dir=out_dir, index=out_dir / "index.html", pages=pages, files=len(written)
        )

    def _clean(self, out_dir: Path, written: set[str]) -> None:
        """Remove what the previous build wrote and this one did not; record this build's files."""
        manifest = out_dir / MANIFEST
        if manifest.is_file():
            for line in manifest.read_text(encoding="utf-8").splitlines():
                if line and line not in written and ".." not in line.split("/"):
                    (out_dir / line).unlink(missing_ok=True)
        manifest.write_text("".join(f"{name}\n" for name in sorted(written)), encoding="utf-8")

    def _provider_summaries(self) -> list[dict]:
        totals = {r["provider"]: r for r in stats.records(self.a.provider_totals)}
        rows = self.a.provider_rows
        out = []
        for provider, slug in self.provider_slugs.items():
            config = self.settings.providers.get(provider) if self.settings else None
            models = sorted(set(rows[rows["provider"] == provider]["model"]))
            out.append(
                {
                    "name": provider,
                    "slug": slug,
                    "totals": totals.get(provider),
                    "protocol": config.protocol if config else None,
                    "baseline": bool(config.baseline) if config else False,
                    "models": len(models),
                }
            )
        return out

    def _challenge_list(self) -> list[dict]:
        images = self.a.newest_images
        counts = images["challenge"].value_counts().to_dict() if len(images) else {}
        return [
            {**c, "page": self.challenge_slugs[slug], "outputs": int(counts.get(slug, 0))}
            for slug, c in sorted(self.challenges.items())
        ]

    def _model_page(self, name: str, scatters, common) -> None:
        info = self.infos[name]
        slug = self.model_slugs[name]
        rows = self.a.provider_rows[self.a.provider_rows["model"] == name]
        provider_rows = stats.records(rows)
        for row in provider_rows:
            row["price_usd"] = info.prices.get(row["provider"])
            row["page"] = self.provider_slugs.get(row["provider"])
        ratings = []
        for task, board in self.v.boards.items():
            mine = board[board["model"] == name]
            if len(mine):
                r = mine.iloc[0]
                ratings.append(
                    {
                        "task": task,
                        "rank": int(r["rank"]),
                        "of": len(board),
                        "rating": r["rating"],
                        "lower": r["lower"],
                        "upper": r["upper"],
                        "votes": int(r["votes"]),
                        "wins": int(r["wins"]),
                        "losses": int(r["losses"]),
                        "ties": int(r["ties"]) + int(r["both_bad"]),
                        "win_rate": r["win_rate"],
                        "preliminary": bool(r["preliminary"]),
                        "note": r["note"],
                    }
                )
        charts_here = [
            (task, kind, scatters[(task, kind)][0])
            for task in self.v.boards
            for kind in ("cost", "speed")
            if scatters.get((task, kind))
            and any(r["task"] == task for r in ratings)
            and f'-pt-{slug}"' in scatters[(task, kind)][0]
        ]
        best = self.v.best_for
        best_rows = []
        if best is not None and len(best):
            mine = best[best["model"] == name].sort_values(
                ["win_rate", "task", "category"], ascending=[False, True, True]
            )
            best_rows = mine.head(5).to_dict(orient="records")
        matchups = self._matchup_rows(self.v.matchups.get(name))
        opponents = self._matchup_rows(self.v.opponents.get(name))
        gallery = []
        images = self.a.newest_images
        if len(images):
            for row in images[images["model"] == name].itertuples(index=False):
                challenge = self.challenges.get(row.challenge, {"title": row.challenge})
                gallery.append(
                    {
                        "challenge": row.challenge,
                        "title": challenge["title"],
                        "page": self.challenge_slugs.get(row.challenge),
                        "provider": row.provider,
                        "picture": self.pictures.of_sha(row.image_sha256),
                        "at": row.started_at,
                    }
                )
        quality = self._model_quality(name)
        traffic = self._traffic("model", name)
        if traffic:
            for row in traffic["rows"]:
                row["price_usd"] = info.prices.get(row["provider"])
                row["page"] = self.provider_slugs.get(row["provider"])
        self._render(
            f"models/{slug}.html",
            "model.html",
            model=self._model_ref(name),
            info=info,
            headline=stats.headline(rows) if len(rows) else None,
            provider_rows=provider_rows,
            traffic=traffic,
            examples=self._examples(name),
            prices=sorted(info.prices.items()),
            ratings=ratings,
            charts=charts_here,
            best_for=best_rows,
            matchups=matchups,
            opponents=opponents,
            gallery=gallery,
            provider_slugs=self.provider_slugs,
            quality=quality,
            **common,
        )

    # --- the quality page: routes, judges, checks ---------------------------------------------

    def _quality_context(self) -> dict:
        """The quality page's context (and quality.json's): every figure as plain records."""
        route_boards = {
            task: self._route_rows(board) for task, board in self.v.route_boards.items()
        }
        routes = [] if self.v.routes is None else route_records(self.v.routes)
        judges = [self._judge_context(judge) for judge in self.v.judges]
        checks = []
        if self.checks is not None:
            for record in self.checks.to_dict(orient="records"):
                checks.append(
                    {
                        **record,
                        "model": self._any_ref(str(record["model"])),
                        "flagged": int(record["flagged"]),
                        "outputs": int(record["outputs"]),
                    }
                )
        return {
            "route_boards": route_boards,
            "routes": routes,
            "judges": judges,
            "checks": checks,
            "check_kinds": CHECK_KINDS,
            "check_settings": self.settings.checks if self.settings else CheckSettings(),
        }

    def _route_rows(self, board: pd.DataFrame) -> list[dict]:
        rows = []
        for row in board.itertuples(index=False):
            model, _, provider = str(row.model).rpartition("@")
            rows.append(
                {
                    **self._any_ref(model),
                    "route": str(row.model),
                    "provider": provider,
                    "provider_page": self.provider_slugs.get(provider),
                    **_rating_fields(row),
                }
            )
        return rows

    def _judge_context(self, judge) -> dict:
        figures = judge.figures
        return {
            "name": judge.name,
            "kind": judge.kind,
            "votes": judge.votes,
            "calls": judge.calls,
            "boards": {
                task: [
                    {**self._any_ref(str(r.model)), **_rating_fields(r)}
                    for r in board.itertuples(index=False)
                ]
                for task, board in judge.boards.items()
            },
            "agreement": [] if figures is None else frame_records(figures.agreement),
            "grouped": {
                by: [r for r in frame_records(frame) if r["matched"]]
                for by, frame in judge.grouped.items()
            },
            "correlation": [] if figures is None else frame_records(figures.correlation),
            "bias": [] if figures is None else frame_records(figures.position_bias),
        }

    def _model_quality(self, name: str) -> dict:
        """This model on the quality page: its route comparisons, judges' ranks and checks."""
        routes = []
        if self.v.routes is not None:
            mine = self.v.routes[self.v.routes["model"] == name]
            routes = route_records(mine)
        judged = []
        for judge in self.v.judges:
            for task, board in judge.boards.items():
                row = board[board["model"] == name]
                if len(row):
                    judged.append(
                        {
                            "judge": judge.name,
                            "task": task,
                            "rank": int(row.iloc[0]["rank"]),
                            "of": len(board),
                            "rating": row.iloc[0]["rating"],
                            "votes": int(row.iloc[0]["votes"]),
                        }
                    )
        checks = []
        if self.checks is not None:
            mine = self.checks[self.checks["model"].astype(str) == name]
            for check, rows in mine.groupby("check", sort=True):
                checks.append(
                    {
                        "check": str(check),
                        "flagged": int(rows["flagged"].sum()),
                        "outputs": int(rows["outputs"].sum()),
                    }
                )
        return {"routes": routes, "judges": judged, "checks": checks}

    def _traffic(self, column: str, name: str) -> dict | None:
        """The gateway's figures for one model or provider, or None where no traffic reached it."""
        rows = self.t.provider_rows[self.t.provider_rows[column] == name]
        if rows.empty:
            return None
        requests = self.t.requests_by_model if column == "model" else self.t.requests_by_provider
        return {
            "rows": stats.records(rows),
            "requests": requests.get(name, 0),
            "window": formats.fmt_days(self.t.window_days),
            "start": self.t.window_start,
            "end": self.t.window_end,
        }

    def _examples(self, name: str) -> list[tuple[str, str, str]]:
        """(key, title, text) of each "use it through the API" example; none for a model the
        current config does not serve (the gateway serves only configured models)."""
        model = self.settings.models.get(name) if self.settings else None
        if model is None:
            return []
        examples = api_examples(model, self.settings.gateway.public_url)
        if examples.get("curl_edit") == examples["curl"]:
            del examples["curl_edit"]  # an edit-only model: its curl example is the edit
        return [(key, EXAMPLE_TITLES[key], text) for key, text in examples.items()]

    def _matchup_rows(self, table) -> list[dict]:
        if table is None or table.empty:
            return []
        rows = []
        for row in table.to_dict(orient="records"):
            opponent = str(row["opponent"])
            rows.append(
                {
                    **row,
                    "opponent": self._any_ref(opponent),
                    "challenge_page": self.challenge_slugs.get(str(row.get("challenge", ""))),
                }
            )
        return rows

    def _challenge_page(self, slug: str, common) -> None:
        challenge = self.challenges[slug]
        records = self.v.challenge_records.get(slug, {})
        outputs = []
        images = self.a.newest_images
        mine = images[images["challenge"] == slug] if len(images) else images
        shown = set()
        for row in mine.itertuples(index=False) if len(mine) else []:
            shown.add(row.model)
            outputs.append(
                {
                    "model": self._model_ref(row.model),
                    "provider": row.provider,
                    "picture": self.pictures.of_sha(row.image_sha256),
                    "record": records.get(row.model),
                }
            )
        for model in sorted(set(records) - shown):
            outputs.append(
                {
                    "model": self._any_ref(model),
                    "provider": None,
                    "picture": None,
                    "record": records[model],
                }
            )
        # Most winning first; models without votes here last, by name.
        outputs.sort(
            key=lambda o: (
                o["record"] is None,
                -(o["record"]["win_pct"] if o["record"] else 0),
                o["model"]["name"],
            )
        )
        votes = (
            sum(r["votes"] for r in records.values()) // 2
        )  # every vote counts once for each side
        self._render(
            f"challenges/{self.challenge_slugs[slug]}.html",
            "challenge.html",
            challenge=challenge,
            outputs=outputs,
            votes=votes,
            **common,
        )

    def _name_models(self, rows: list[dict], provider: str) -> None:
        """A provider page's rows get their model's link (none for an unconfigured model) and
        its price at this provider."""
        for row in rows:
            info = self.infos.get(row["model"])
            row["model_ref"] = self._any_ref(row["model"])
            row["price_usd"] = info.prices.get(provider) if info is not None else None

    def _provider_page(self, provider: str, summaries, common) -> None:
        summary = next(s for s in summaries if s["name"] == provider)
        rows = self.a.provider_rows[self.a.provider_rows["provider"] == provider]
        models = stats.records(rows)
        self._name_models(models, provider)
        nights = self.a.nights[self.a.nights["provider"] == provider].sort_values("model")
        chart = None
        if len(nights) >= 2:
            chart = charts.provider_over_time(
                f"nights-{self.provider_slugs[provider]}",
                list(nights["model"]),
                [None if formats.missing(v) else v / 1000 for v in nights["p50_ms"]],
                [None if formats.missing(v) else v / 1000 for v in nights["p95_ms"]],
                list(nights["success_rate"]),
                f"{provider}: generation time and success rate per night",
            )
        failures = []
        if summary["totals"]:
            said = stats.messages_by_class(self.a.messages, provider=provider)
            failures = [
                (c, n, said.get(c, [])) for c, n in summary["totals"]["failures"].items() if n
            ]
        traffic = self._traffic("provider", provider)
        if traffic:
            totals = self.t.provider_totals
            mine = totals[totals["provider"] == provider]
            traffic["totals"] = stats.records(mine)[0] if len(mine) else None
            self._name_models(traffic["rows"], provider)
        self._render(
            f"providers/{self.provider_slugs[provider]}.html",
            "provider.html",
            provider=summary,
            models=models,
            traffic=traffic,
            chart=chart,
            nights=stats.records(nights),
            failures=failures,
            **common,
        )


def _rating_fields(row) -> dict:
    """A board row's rating figures, as every board table on the site shows them."""
    return {
        "rank": int(row.rank),
        "rating": row.rating,
        "lower": row.lower,
        "upper": row.upper,
        "votes": int(row.votes),
        "win_rate": row.win_rate,
        "preliminary": bool(row.preliminary),
    }
