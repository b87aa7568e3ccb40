"""The rating engine: pure functions from a vote table (plus options) to boards and matchups.

    frames          the canonical vote DataFrame: reading released vote files, validation
    bradley_terry   the Bradley–Terry fit on pair counts (Newton MLE, Davidson ties, bootstrap)
    boards          leaderboards on the Elo scale: intervals, ranks, groups, JSON records
    matchups        head-to-head, win matrices, best-for, online Elo history, position bias
    text            boards as aligned plain text

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
from arena.ratings.text import format_board_text, format_boards_text

__all__ = [
    "BOARD_COLUMNS",
    "BY_CHOICES",
    "ELO_PER_LOGIT",
    "RatingOptions",
    "Tally",
    "board_records",
    "boards_records",
    "compute_board",
    "compute_boards",
    "format_board_text",
    "format_boards_text",
    "tally_votes",
]
