"""The rating engine: pure functions from a vote table (plus options) to boards and matchups.

    frames          the canonical vote DataFrame: reading released vote files, validation
    bradley_terry   the Bradley–Terry fit on pair counts (Newton MLE, Davidson ties, bootstrap)
    boards          leaderboards on the Elo scale: intervals, ranks, groups, JSON records
    matchups        head-to-head records, win and battle matrices, best-for, position bias
    history         online Elo, vote by vote in time order (ratings over time)

No module here does I/O on the store or the network; anyone can recompute every board.
"""

from arena.ratings.boards import (
    BOARD_COLUMNS,
    BY_CHOICES,
    ELO_PER_LOGIT,
    RatingOptions,
    Tally,
    board_records,
    boards_records,
    compute_board,
    compute_boards,
    tally_votes,
)
from arena.ratings.frames import CANONICAL_COLUMNS, check_vote_frame, read_votes_file
from arena.ratings.history import elo_series, online_elo
from arena.ratings.matchups import (
    HEAD_TO_HEAD_COLUMNS,
    Records,
    battle_matrix,
    best_for,
    count_records,
    head_to_head,
    position_bias,
    win_matrix,
)

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
