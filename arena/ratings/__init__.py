"""The rating engine: pure functions from a vote table (plus options) to boards and matchups.

    frames          the canonical vote DataFrame: reading released vote files, validation
    bradley_terry   the Bradley–Terry fit on pair counts (Newton MLE, Davidson ties, bootstrap)
    boards          leaderboards on the Elo scale: intervals, ranks, groups, JSON records
    matchups        head-to-head records, win and battle matrices, best-for, position bias
    history         online Elo, vote by vote in time order (ratings over time)

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
    "tally_votes": "boards",
    "CANONICAL_COLUMNS": "frames",
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
}


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"arena.ratings.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'arena.ratings' has no attribute {name!r}")


__all__ = [
    "BOARD_COLUMNS",
    "BY_CHOICES",
    "CANONICAL_COLUMNS",
    "ELO_PER_LOGIT",
    "HEAD_TO_HEAD_COLUMNS",
    "RatingOptions",
    "Records",
    "Tally",
    "battle_matrix",
    "best_for",
    "board_records",
    "boards_records",
    "check_vote_frame",
    "compute_board",
    "compute_boards",
    "count_records",
    "elo_series",
    "head_to_head",
    "online_elo",
    "position_bias",
    "read_votes_file",
    "tally_votes",
    "win_matrix",
]
