"""`arena report` on the golden store: pages, links, downloads, numbers, escaping, determinism, empty states."""

from __future__ import annotations

import csv
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest

from arena import stats, store
from arena.cli import main
from arena.ratings import board_records, compute_board
from arena.report import build_site
from arena.report.formats import slugify

from .conftest import EVIL_MODEL, EVIL_PROMPT, IP_SECRET, STAMP, VOTER_SECRET

MODELS = ["identity", "cartoon-filter", "night-grade", "prompt-card", EVIL_MODEL]
CHALLENGES = ["bald-man", "night-sky", "evil-prompt"]


class _Links(HTMLParser):
    """Every href/src in a page, and the data-value cells of tables."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "xlink:href") and value:
                self.links.append(value)


def links_of(path: Path) -> list[str]:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser.links


def internal_targets(page: Path, root: Path) -> list[Path]:
    targets = []
    for link in links_of(page):
        parts = urlsplit(link)
        if parts.scheme or link.startswith("#") or link.startswith("data:"):
            assert parts.scheme in ("", "data"), f"{page.name} links outside the site: {link}"
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        assert root.resolve() in target.parents, f"{page}: {link} leaves the site"
        targets.append(target)
    return targets


def test_every_page_exists_and_every_internal_link_and_image_resolves(golden_site):
    root = golden_site.out_dir
    expected = {"index.html", "methodology.html", "quality.html", "providers/local.html"}
    expected |= {f"models/{slugify(m)}.html" for m in MODELS}
    expected |= {f"challenges/{c}.html" for c in CHALLENGES}
    pages = {str(p.relative_to(root)) for p in root.rglob("*.html")}
    assert pages == expected
    assert golden_site.pages == len(expected)
    # Crawl from the index: every page is reachable and every link and image resolves.
    seen, queue, images = set(), [root / "index.html"], 0
    while queue:
        page = queue.pop()
        if page in seen:
            continue
        seen.add(page)
        for target in internal_targets(page, root):
            assert target.is_file(), f"{page.relative_to(root)} -> {target} is missing"
            if target.suffix == ".html":
                queue.append(target)
            images += target.suffix in (".webp", ".png", ".jpg")
    assert {str(p.relative_to(root)) for p in seen} == expected
    assert images >= 15  # thumbnails and full-size links of every output and source
    for name in ("leaderboard.json", "generations.csv", "votes.csv"):
        assert (root / "downloads" / name).is_file()


def test_thumbnails_are_small_webp_linking_to_full_size(golden_site):
    from PIL import Image

    root = golden_site.out_dir
    page = root / "challenges" / "bald-man.html"
    html = page.read_text()
    pairs = re.findall(r'<a href="([^"]+)"><img src="([^"]+)"', html)
    assert len(pairs) >= 4  # the source and three edit models' outputs
    for full, thumb in pairs:
        with Image.open(page.parent / thumb) as small, Image.open(page.parent / full) as large:
            assert small.format == "WEBP" and max(small.size) <= 256
            assert large.size[0] >= small.size[0] and large.format in ("PNG", "JPEG")


def test_leaderboard_json_matches_compute_board(golden, golden_site):
    data = json.loads((golden_site.out_dir / "downloads" / "leaderboard.json").read_text())
    votes = store.read_votes(store.open_engine(golden.database_url))
    assert [b["task"] for b in data["boards"]] == ["text-to-image", "edit"]
    for board in data["boards"]:
        expected = board_records(compute_board(votes[votes["task"] == board["task"]]))
        keys = expected[0].keys()
        assert [{k: row[k] for k in keys} for row in board["models"]] == expected
        assert board["votes"] == sum(
            1 for _, v in votes.iterrows() if v["task"] == board["task"] and not v["flagged"]
        )
    baselines = {row["model"]: row["baseline"] for b in data["boards"] for row in b["models"]}
    assert baselines == {
        "identity": True,
        "cartoon-filter": False,
        "night-grade": False,
        "prompt-card": True,
        EVIL_MODEL: False,
    }


def _cells(html: str, row_attr: str) -> dict[str, str]:
    row = re.search(rf"<tr {row_attr}>(.*?)</tr>", html, re.S)
    assert row, row_attr
    return dict(
        re.findall(r'data-value="([^"]*)" data-field="([^"]+)"', row.group(1))[::1]
        and [
            (f, v)
            for v, f in re.findall(r'data-value="([^"]*)" data-field="([^"]+)"', row.group(1))
        ]
    )


def test_model_page_numbers_equal_arena_stats_json_and_the_ratings(
    golden, golden_site, capsys, tmp_path
):
    config = tmp_path / "arena.toml"
    config.write_text(_toml(golden))
    assert main(["stats", "--json", "--window", "30d", "--config", str(config)]) == 0
    rows = json.loads(capsys.readouterr().out)
    votes = store.read_votes(store.open_engine(golden.database_url))
    for model in ("cartoon-filter", EVIL_MODEL):
        html = (golden_site.out_dir / "models" / f"{slugify(model)}.html").read_text()
        mine = [r for r in rows if r["model"] == model]
        assert len(mine) == 1
        cells = _cells(html, 'data-provider="local"')
        for field in ("p50_ms", "p95_ms", "success_rate", "ttfb_p50_ms", "n", "successes", "rank"):
            assert float(cells[field]) == pytest.approx(mine[0][field], rel=1e-12), field
        task = "edit" if model == "cartoon-filter" else "text-to-image"
        board = compute_board(votes[votes["task"] == task])
        expected = board[board["model"] == model].iloc[0]
        rating = _cells(html, f'data-task="{task}"')
        assert float(rating["rating"]) == pytest.approx(expected["rating"], abs=1e-9)
        assert float(rating["lower"]) == pytest.approx(expected["lower"], abs=1e-9)
        assert int(rating["rank"]) == expected["rank"] and int(rating["votes"]) == expected["votes"]
        assert float(rating["win_rate"]) == pytest.approx(expected["win_rate"])
        assert f"{expected['rank']} of {len(board)}" in html
        assert (
            stats.headline(pd.DataFrame(mine)).split(" (n=")[0][1:] in html
        )  # "astest through local at ..."


def _toml(settings) -> str:
    """The golden settings back as an arena.toml, for the CLI."""
    from .conftest import golden_config

    config = golden_config(Path(settings.data_dir).parent)
    lines = [
        f'data_dir = "{config["data_dir"]}"',
        f'database_url = "{config["database_url"]}"',
        f'challenges_dir = "{config["challenges_dir"]}"',
        "",
        "[providers.local]",
        'protocol = "local"',
        "",
    ]
    for name, model in config["models"].items():
        key = json.dumps(name)
        lines += [f"[models.{key}]", f"tasks = {json.dumps(model['tasks'])}"]
        if "baseline" in model:
            lines.append(f"baseline = {str(model['baseline']).lower()}")
        route = model["providers"]["local"]
        lines += [f"[models.{key}.providers.local]", f'model_id = "{route["model_id"]}"']
        if "price_usd" in route:
            lines.append(f"price_usd = {route['price_usd']}")
        else:
            lines.append(
                "price_usd_by_tier = { "
                + ", ".join(f'"{k}" = {v}' for k, v in route["price_usd_by_tier"].items())
                + " }"
            )
        lines.append("")
    return "\n".join(lines)


def test_user_strings_are_escaped_everywhere(golden_site):
    root = golden_site.out_dir
    for page in root.rglob("*.html"):
        html = page.read_text()
        assert "<script>alert" not in html, page
        assert len(re.findall(r"<script\b", html)) == 1, page  # only the site's own sort.js
    model_page = (root / "models" / f"{slugify(EVIL_MODEL)}.html").read_text()
    assert "&lt;script&gt;alert(&#34;model&#34;)&lt;/script&gt;" in model_page
    challenge_page = (root / "challenges" / "evil-prompt.html").read_text()
    assert (
        "Draw a cat &lt;script&gt;alert(&#34;prompt&#34;)&lt;/script&gt; &amp; a dog"
        in challenge_page
    )
    assert EVIL_PROMPT not in challenge_page
    assert (
        "&lt;script&gt;alert(" in (root / "index.html").read_text()
    )  # the name inside the chart's SVG text too


def test_baselines_are_labelled_wherever_models_are_shown(golden_site):
    root = golden_site.out_dir
    index = (root / "index.html").read_text()
    for model, baseline in (
        ("identity", True),
        ("prompt-card", True),
        ("cartoon-filter", False),
        ("night-grade", False),
    ):
        row = re.search(rf'<tr data-model="{model}"[^>]*>(.*?)</tr>', index, re.S).group(1)
        assert ("badge baseline" in row) == baseline, model
        page = (root / "models" / f"{model}.html").read_text()
        assert (
            '<h1 class="model-name">' + model + ' <span class="badge baseline"' in page
        ) == baseline
    assert "identity (baseline)" in index  # in the charts' labels


def test_votes_csv_has_every_vote_and_no_voter_or_ip(golden, golden_site):
    text = (golden_site.out_dir / "downloads" / "votes.csv").read_text()
    assert VOTER_SECRET not in text and IP_SECRET not in text
    rows = list(csv.DictReader(text.splitlines()))
    assert set(rows[0]) == {
        "battle_id",
        "created_at",
        "task",
        "category",
        "challenge",
        "model_left",
        "model_right",
        "outcome",
        "flagged",
    }
    votes = store.read_votes(store.open_engine(golden.database_url))
    assert [r["battle_id"] for r in rows] == list(votes["battle_id"])
    assert sum(r["flagged"] == "True" for r in rows) == 2
    generations = list(
        csv.DictReader(
            (golden_site.out_dir / "downloads" / "generations.csv").read_text().splitlines()
        )
    )
    assert len(generations) == 8 and {g["model"] for g in generations} == set(MODELS)


def assert_same_read(lean: pd.DataFrame, default: pd.DataFrame) -> None:
    """The lean read holds the default read's values: labels as categoricals, numbers as numbers."""
    assert list(lean.columns) == list(default.columns) and len(lean) == len(default)
    for name in lean.columns:
        mine, theirs = lean[name], default[name]
        if isinstance(mine.dtype, pd.CategoricalDtype):
            mine = mine.astype(object).where(mine.notna(), None)
        elif mine.dtype.kind in "if":
            theirs = theirs.astype(
                float
            )  # an all-NULL number column reads as None in the default read
        pd.testing.assert_series_equal(mine, theirs, check_dtype=False, obj=name)


def test_lean_reads_equal_the_default_reads(golden):
    engine = store.open_engine(golden.database_url)
    lean = store.read_votes(engine, labels_as_categories=True)
    assert isinstance(lean["model_left"].dtype, pd.CategoricalDtype)
    assert_same_read(lean, store.read_votes(engine))
    assert_same_read(
        store.read_votes(
            engine, include_flagged=False, extra_columns=True, labels_as_categories=True
        ),
        store.read_votes(engine, include_flagged=False, extra_columns=True),
    )
    lean = store.read_attempts(engine, labels_as_categories=True)
    assert isinstance(lean["provider"].dtype, pd.CategoricalDtype) and lean["ok"].dtype == bool
    assert_same_read(lean, store.read_attempts(engine))
    picked = ["started_at", "model", "generation_ms"]
    assert_same_read(
        store.read_attempts(engine, columns=picked, labels_as_categories=True),
        store.read_attempts(engine, columns=picked),
    )


@pytest.mark.slow
def test_same_store_gives_the_same_bytes_but_the_stamp(golden, golden_site, tmp_path):
    from datetime import UTC, datetime

    again = build_site(golden, tmp_path / "again", stamp=datetime(2031, 5, 6, tzinfo=UTC))
    first = {
        str(p.relative_to(golden_site.out_dir)): p.read_bytes()
        for p in golden_site.out_dir.rglob("*")
        if p.is_file()
    }
    second = {
        str(p.relative_to(again.out_dir)): p.read_bytes()
        for p in again.out_dir.rglob("*")
        if p.is_file()
    }
    assert first.keys() == second.keys()
    differ = [name for name in first if first[name] != second[name]]
    assert differ == ["index.html"]
    unstamp = re.compile(rb'<time id="build-stamp">[^<]*</time>')
    assert unstamp.sub(b"", first["index.html"]) == unstamp.sub(b"", second["index.html"])
    assert STAMP.strftime("%Y-%m-%d %H:%M:%S").encode() in first["index.html"]
    # Rebuilding in place keeps the thumbnails and removes what the old build had and this one has not.
    stale = again.out_dir / "models" / "gone.html"
    stale.write_text("old")
    manifest = again.out_dir / ".arena-site"
    manifest.write_text(manifest.read_text() + "models/gone.html\n")
    build_site(golden, again.out_dir, stamp=datetime(2031, 5, 6, tzinfo=UTC))
    assert not stale.exists()
    assert {
        str(p.relative_to(again.out_dir)): p.read_bytes()
        for p in again.out_dir.rglob("*")
        if p.is_file()
    } == second


def test_an_empty_store_gives_a_site_that_explains_what_to_do(tmp_path):
    engine = store.open_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    result = build_site(engine, tmp_path / "site")
    index = result.index.read_text()
    assert "No models and no votes yet" in index and "<code>arena serve</code>" in index
    assert "No generations yet" in index
    methodology = (tmp_path / "site" / "methodology.html").read_text()
    assert "No decisive votes yet" in methodology
    assert (tmp_path / "site" / "downloads" / "votes.csv").read_text().startswith("battle_id,")
    assert (
        json.loads((tmp_path / "site" / "downloads" / "leaderboard.json").read_text())["boards"]
        == []
    )


def test_models_without_votes_are_listed_with_the_no_votes_message(golden, tmp_path):
    """Generations but no votes: every model is listed under its task with its speed, and how to vote."""
    import sqlite3
    from dataclasses import replace

    from arena.store.tables import Vote

    db = tmp_path / "novotes.db"
    with (
        sqlite3.connect(golden.database_url.split("///", 1)[1]) as source,
        sqlite3.connect(db) as copy,
    ):
        source.backup(copy)  # the WAL's pages too, which a file copy would miss
    engine = store.open_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(Vote.__table__.delete())
    result = build_site(replace(golden, database_url=f"sqlite:///{db}"), tmp_path / "site")
    index = result.index.read_text()
    assert index.count("No votes yet: run <code>arena serve</code> and vote") == 2
    for model in ("identity", "cartoon-filter", "prompt-card"):
        assert f'<tr data-model="{model}">' in index
    page = (tmp_path / "site" / "models" / "cartoon-filter.html").read_text()
    assert "No votes for this model yet" in page and "fastest through local" in page.lower()


@pytest.mark.slow
def test_arena_report_command_prints_the_path_and_how_to_vote(golden, tmp_path, capsys):
    config = tmp_path / "arena.toml"
    config.write_text(_toml(golden))
    assert main(["report", "--config", str(config), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert f"report:  {(tmp_path / 'out' / 'index.html').resolve()}" in out and "arena serve" in out
    assert (tmp_path / "out" / "models" / "identity.html").is_file()


def test_challenge_page_records_count_that_challenges_votes(golden, golden_site):
    votes = store.read_votes(store.open_engine(golden.database_url))
    votes = votes[(votes["challenge"] == "bald-man") & ~votes["flagged"]]
    html = (golden_site.out_dir / "challenges" / "bald-man.html").read_text()
    for model in ("identity", "cartoon-filter", "night-grade"):
        mine = votes[(votes["model_left"] == model) | (votes["model_right"] == model)]
        won = ((mine["model_left"] == model) & (mine["outcome"] == "left")).sum() + (
            (mine["model_right"] == model) & (mine["outcome"] == "right")
        ).sum()
        tied = mine["outcome"].isin(["tie", "both_bad"]).sum()
        record = re.search(
            rf'<span class="record" data-model="{model}">(\d+) votes: (\d+) W / (\d+) L / (\d+) T',
            html,
        )
        assert record, model
        assert [int(g) for g in record.groups()] == [len(mine), won, len(mine) - won - tied, tied]
    assert f"{len(votes):,} votes on this challenge" in html
