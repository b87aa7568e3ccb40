"""The rating engine: pure functions from a vote table (plus options) to boards and matchups.

    frames          the canonical vote DataFrame: reading released vote files, validation
    bradley_terry   the Bradley–Terry fit on pair counts (Newton MLE, Davidson ties, bootstrap)
    boards          leaderboards on the Elo scale: intervals, ranks, groups, JSON records; from
                    vote rows or from pair counts (the store counts votes in SQL)
    matchups        head-to-head records, win and battle matrices, best-for, position bias
    history         online Elo, vote by vote in time order (ratings over time)
    routes          route boards ("model@provider") and the test of whether two routes differ
    agreement       a judge against the humans: agreement, Kendall's tau, the judge's position bias
    proportions     Wilson intervals for a share, Newcombe's for a difference of two

No module here does I/O on the store or the network; anyone can recompute every board.
"""

import importlib

# Each public name and the module that holds it, loaded on first use: a reader of vote frames alone
# (the store, the gateway) does not pay for scipy, which the fits and intervals need.
_WHERE = {
    "BOARD_COLUMNS": "boards",
    "BY_CHOICES": "boards",
    "ELO_PER_LOGIT": "boards",
    "RatingOptions": "boards",
    "Tally": "boards",
    "board_records": "boards",
    "boards_records": "boards",
    "compute_board": "boards",
    "compute_boards": "boards",
    "compute_boards_from_counts": "boards",
    "tally_counts": "boards",
    "tally_votes": "boards",
    "CANONICAL_COLUMNS": "frames",
    "COUNT_COLUMN": "frames",
    "check_vote_frame": "frames",
    "read_votes_file": "frames",
    "elo_series": "history",
    "online_elo": "history",
    "HEAD_TO_HEAD_COLUMNS": "matchups",
    "Records": "matchups",
    "battle_matrix": "matchups",
    "best_for": "matchups",
    "count_records": "matchups",
    "head_to_head": "matchups",
    "position_bias": "matchups",
    "win_matrix": "matchups",
    "AGREEMENT_COLUMNS": "agreement",
    "CORRELATION_COLUMNS": "agreement",
    "POSITION_BIAS_COLUMNS": "agreement",
    "board_correlation": "agreement",
    "boards_correlation": "agreement",
    "judge_agreement": "agreement",
    "judge_position_bias": "agreement",
    "ROUTE_COMPARISON_COLUMNS": "routes",
    "compare_routes": "routes",
    "compare_routes_from_counts": "routes",
    "route_records": "routes",
    "route_votes": "routes",
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"arena.ratings.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'arena.ratings' has no attribute {name!r}")


__all__ = [
    "AGREEMENT_COLUMNS",
    "BOARD_COLUMNS",
    "BY_CHOICES",
    "CANONICAL_COLUMNS",
    "COUNT_COLUMN",
    "CORRELATION_COLUMNS",
    "ELO_PER_LOGIT",
    "HEAD_TO_HEAD_COLUMNS",
    "POSITION_BIAS_COLUMNS",
    "ROUTE_COMPARISON_COLUMNS",
    "RatingOptions",
    "Records",
    "Tally",
    "battle_matrix",
    "best_for",
    "board_correlation",
    "board_records",
    "boards_correlation",
    "boards_records",
    "check_vote_frame",
    "compare_routes",
    "compare_routes_from_counts",
    "compute_board",
    "compute_boards",
    "compute_boards_from_counts",
    "count_records",
    "elo_series",
    "head_to_head",
    "judge_agreement",
    "judge_position_bias",
    "online_elo",
    "position_bias",
    "read_votes_file",
    "route_records",
    "route_votes",
    "tally_counts",
    "tally_votes",
    "win_matrix",
]
