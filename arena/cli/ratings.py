"""What `arena ratings` prints beyond the plain boards: whose votes (--voters), route boards and
the route test (--by route), and each judge against the humans (--agreement)."""

from __future__ import annotations

import json
import math

import pandas as pd

from arena.cli.tables import add_row, board_table, emit, table
from arena.errors import ArenaError, plural

VOTER_WORDS = {"humans": "humans", "judges": "judges", "all": "anyone"}


def check_ratings_args(args) -> None:
    """The combinations of --voters, --votes, --agreement, --judge and --by that mean nothing."""
    voters = args.voters
    if voters not in VOTER_WORDS and not (
        voters.startswith("judge:") and len(voters) > len("judge:")
    ):
        raise ArenaError(
            f"--voters {voters!r}: expected humans, judges, all or judge:NAME (one judge's votes)"
        )
    if args.votes and voters != "humans":
        raise ArenaError(
            f"--voters {voters}: a votes file (--votes) does not say who voted; "
            "--voters picks among the store's votes"
        )
    if args.judge and not args.agreement:
        raise ArenaError(
            f"--judge {args.judge}: goes with --agreement; one judge's board is "
            f"--voters judge:{args.judge.removeprefix('judge:')}"
        )
    if args.agreement:
        if args.votes:
            raise ArenaError(
                "--agreement: a votes file (--votes) holds no judge votes; it compares the "
                "store's judge votes with its human votes"
            )
        if voters != "humans":
            raise ArenaError(
                f"--voters {voters}: --agreement always compares each judge with the humans "
                "(pick a judge with --judge NAME)"
            )
        if args.by == "route":
            raise ArenaError("--agreement: --by takes category or challenge here, not route")


def no_votes_message(args, settings, engine) -> str:
    """No votes from the voters asked for: a next step, or an error for a judge nobody configured."""
    from arena import store

    voters = args.voters
    task = f" on {args.task}" if args.task else ""
    who = VOTER_WORDS.get(voters, voters)
    if voters.startswith("judge:"):
        name = voters.removeprefix("judge:")
        if name not in settings.judges:
            kinds = store.voter_kinds(engine)
            configured = ", ".join(sorted(settings.judges)) or "none"
            raise ArenaError(
                f"--voters {voters}: no votes from that judge and no [judges.{name}] in the config; "
                f"voter kinds with votes: {', '.join(kinds) or 'none'}; judges configured: {configured}"
            )
        return (
            f"no votes yet from {who}{task}: run `arena judge --judge {name}`, "
            f"then `arena ratings --voters {voters}`"
        )
    if voters == "judges":
        return f"no votes yet from judges{task}: run `arena judge`, then `arena ratings --voters judges`"
    return (
        f"no votes yet from {who}{task}: run `arena serve`, vote on the page it prints, "
        "then `arena ratings`"
    )


def board_labels(votes: pd.DataFrame, by: str | None) -> list[str]:
    """The names a board's rows carry: models, or "model@provider" routes with --by route (from
    vote rows or pair counts alike)."""
    if by == "route":
        from arena.ratings import route_votes

        votes = route_votes(votes)
    return sorted(set(votes["model_left"].astype(str)) | set(votes["model_right"].astype(str)))


# --- --by route ------------------------------------------------------------------------------


def print_routes(boards: dict, comparisons: pd.DataFrame, as_json: bool = False) -> int:
    """The route boards, then each model's routes compared two by two (ratings.compare_routes)."""
    from arena.ratings import boards_records, route_records

    if as_json:
        print(
            json.dumps(
                {
                    "boards": boards_records(boards, by="route"),
                    "routes": route_records(comparisons),
                },
                indent=2,
            )
        )
        return 0
    out: list = []
    for (task, _), board in boards.items():
        if out:
            out.append("")
        out.append(f"{task} · routes ({plural(int(board.attrs.get('votes', 0)), 'vote')})")
        out.extend(board_table(board))
    out.append("")
    out.extend(routes_renderables(comparisons))
    emit(out)
    return 0


def routes_renderables(comparisons: pd.DataFrame) -> list:
    """The route test as a table and one sentence per pair of routes."""
    if comparisons.empty:
        return [
            "route test: no model has votes on two or more routes, so there is nothing to compare"
        ]
    shown = table(
        "task", "model", "route a", "route b", "a vs common", "b vs common", "a − b (95%)",
        "head to head", "verdict",
        right=range(4, 7),
    )  # fmt: skip
    for r in comparisons.to_dict("records"):
        add_row(
            shown,
            r["task"],
            r["model"],
            r["route_a"],
            r["route_b"],
            _share(r["score_a"], r["n_a"]),
            _share(r["score_b"], r["n_b"]),
            _difference(r),
            f"{r['h2h_wins']}/{r['h2h_losses']}/{r['h2h_ties']}" if r["h2h_votes"] else "-",
            r["verdict"],
        )
    out: list = [
        "route test: each pair of routes of one model, scored (ties half) against the models both met",
        shown,
    ]
    out.extend(r["sentence"] for r in comparisons.to_dict("records"))
    return out


def _share(value: float, n: int) -> str:
    return "-" if not n else f"{100 * value:.0f}% (n={n:,})"


def _difference(r: dict) -> str:
    if math.isnan(r["difference"]):
        return "-"
    return (
        f"{100 * r['difference']:+.0f} pts "
        f"({100 * r['difference_lower']:+.0f} – {100 * r['difference_upper']:+.0f})"
    )


# --- --agreement -----------------------------------------------------------------------------


def print_agreement(args, settings) -> int:
    """Each judge (or --judge NAME) against the human votes; nothing to compare is said, exit 0."""
    from arena import store
    from arena.app.agreement import judge_agreement_figures, judge_kinds

    engine = store.open_engine(settings.database_url)
    found = judge_agreement_figures(
        engine,
        judge=args.judge,
        by=args.by,
        tasks=(args.task,) if args.task else None,
    )
    message = ""
    task = f" on {args.task}" if args.task else ""
    if not found.human_votes:
        message = (
            f"no human votes{task} to compare the judges with: run `arena serve` and vote, "
            "then `arena ratings --agreement`"
        )
    elif not found.judges:
        configured = (
            f" (judges configured: {', '.join(sorted(settings.judges))})" if settings.judges else ""
        )
        known = judge_kinds(found.voter_kinds)
        message = (
            f"no judge votes{task} to compare with the humans{configured}: run `arena judge`, "
            "then `arena ratings --agreement`"
            if not known
            else f"no judge votes{task} to compare with the humans from {', '.join(known)}"
        )
    if args.json:
        from arena.ratings.frames import frame_records

        print(
            json.dumps(
                {
                    "human_votes": found.human_votes,
                    "by": args.by,
                    "message": message,
                    "judges": [
                        {
                            "judge": f.judge,
                            "judge_votes": f.judge_votes,
                            "agreement": frame_records(f.agreement),
                            "grouped": None if f.grouped is None else frame_records(f.grouped),
                            "correlation": frame_records(f.correlation),
                            "position_bias": frame_records(f.position_bias),
                        }
                        for f in found.judges
                    ],
                },
                indent=2,
            )
        )
        return 0
    if message:
        print(message)
        return 0
    out: list = []
    for figures in found.judges:
        if out:
            out.append("")
        out.extend(judge_renderables(figures, found.human_votes, args.by))
    emit(out)
    return 0


def judge_renderables(figures, human_votes: int, by: str | None) -> list:
    """One judge: its agreement table(s), Kendall's tau per board, its position bias."""
    out: list = [
        f"{figures.judge}: {plural(figures.judge_votes, 'judge vote')} against "
        f"{plural(human_votes, 'human vote')}",
        "agreement: the share of decisive human votes (left or right) the judge agrees with",
        _agreement_table(figures.agreement, None),
    ]
    if figures.grouped is not None:
        out.append(f"agreement by {by}:")
        out.append(_agreement_table(figures.grouped, by))
    out.append("Kendall's tau between the human board and the judge's board (models on both):")
    if figures.correlation.empty:
        out.append("no board the humans and the judge both rated")
    else:
        shown = table("task", by or "board", "models", "tau", "p", right=range(2, 5))
        for r in figures.correlation.to_dict("records"):
            add_row(
                shown,
                r["task"],
                "all" if pd.isna(r["group"]) else r["group"],
                r["n_models"],
                "-" if pd.isna(r["tau"]) else f"{r['tau']:+.2f}",  # None is NaN in a frame
                "-" if pd.isna(r["p_value"]) else f"{r['p_value']:.3f}",
            )
        out.append(shown)
    out.append("position bias: the judge's calls, each comparison asked with the sides swapped")
    if figures.position_bias.empty:
        out.append("no answered calls of this judge in the store")
    else:
        shown = table(
            "task", "calls", "decisive", "first shown won", "95% interval", "both orders",
            "consistent", "95% interval",
            right=range(1, 8),
        )  # fmt: skip
        for r in figures.position_bias.to_dict("records"):
            add_row(
                shown,
                r["task"],
                f"{r['calls']:,}",
                f"{r['decisive']:,}",
                _percent(r["first_share"]),
                _interval(r["first_lower"], r["first_upper"]),
                f"{r['comparisons']:,}",
                _percent(r["consistency"]),
                _interval(r["consistency_lower"], r["consistency_upper"]),
            )
        out.append(shown)
    return out


def _agreement_table(frame: pd.DataFrame, by: str | None):
    headings = ["task", *([by] if by else []), "decisive", "matched", "exact", "fallback"]
    headings += ["agree", "disagree", "judge tie", "agreement", "95% interval"]
    shown = table(*headings, right=range(2 if by else 1, len(headings)))
    for r in frame.to_dict("records"):
        cells = [r["task"], *([r["group"]] if by else [])]
        cells += [f"{r[name]:,}" for name in ("human_decisive", "matched", "exact", "fallback")]
        cells += [f"{r[name]:,}" for name in ("agree", "disagree", "judge_tie")]
        cells += [_percent(r["agreement"]), _interval(r["lower"], r["upper"])]
        add_row(shown, *cells)
    return shown


def _percent(share) -> str:
    return "-" if share is None or math.isnan(share) else f"{100 * share:.0f}%"


def _interval(lower, upper) -> str:
    if lower is None or math.isnan(lower):
        return "—"
    return f"{100 * lower:.0f} – {100 * upper:.0f}%"
