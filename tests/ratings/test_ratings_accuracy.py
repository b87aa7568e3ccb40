"""The fit is exact (converged, equal to a slow direct maximization) and statistically honest.

Every synthetic arena is seeded, so these tests give the same numbers on every run.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, log_expit

from arena.ratings import ELO_PER_LOGIT, RatingOptions, compute_board, tally_votes
from arena.ratings import bradley_terry as bt
from ratings.synth import draw_votes, model_names


def slow_direct_fit(votes, ties: str) -> dict[str, float]:
    """Maximize the likelihood vote by vote (no aggregation) with BFGS; ratings centred at 1000."""
    names = sorted(set(votes["model_left"]) | set(votes["model_right"]))
    index = {name: k for k, name in enumerate(names)}
    left = votes["model_left"].map(index).to_numpy()
    right = votes["model_right"].map(index).to_numpy()
    outcome = votes["outcome"].replace({"both_bad": "tie"}).to_numpy()
    if ties == "drop":
        keep = outcome != "tie"
        left, right, outcome = left[keep], right[keep], outcome[keep]
    score = np.select([outcome == "left", outcome == "right"], [1.0, 0.0], 0.5)
    is_tie = outcome == "tie"
    m = len(names)

    def negative_loglik(params):
        theta = params[:m]
        d = theta[left] - theta[right]
        if ties != "davidson":
            value = score * log_expit(d) + (1 - score) * log_expit(-d)
            weight = score - expit(d)
        else:
            tau = params[m]
            log_denominator = np.logaddexp(np.logaddexp(d / 2, -d / 2), tau)
            mine = np.where(is_tie, tau, np.where(score == 1, d / 2, -d / 2))
            value = mine - log_denominator
            p_i = np.exp(d / 2 - log_denominator)
            p_j = np.exp(-d / 2 - log_denominator)
            p_t = np.exp(tau - log_denominator)
            weight = np.where(is_tie, 0.0, np.where(score == 1, 0.5, -0.5)) - (p_i - p_j) / 2
        gradient = np.zeros_like(params)
        np.add.at(gradient, left, weight)
        np.add.at(gradient, right, -weight)
        if ties == "davidson":
            gradient[m] = (is_tie - p_t).sum()
        return -value.sum(), -gradient

    start = np.zeros(m + (ties == "davidson"))
    result = minimize(
        negative_loglik, start, jac=True, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000}
    )
    theta = result.x[:m]
    return {name: 1000 + ELO_PER_LOGIT * (theta[k] - theta.mean()) for k, name in enumerate(names)}


@pytest.mark.parametrize("ties", ["half", "drop", "davidson"])
def test_fit_is_converged_and_equals_a_slow_direct_maximization(ties):
    votes = draw_votes(np.array([1.2, 0.7, 0.3, 0.0, -0.4, -1.1, 0.5]), 6000, seed=21)
    options = RatingOptions(ties=ties, intervals="closed_form")
    counts = tally_votes(votes).pair_counts(options)
    fit = bt.fit(counts, davidson=ties == "davidson")
    assert fit.max_abs_gradient <= 1e-6
    board = compute_board(votes, options)
    reference = slow_direct_fit(votes, ties)
    for model, rating in zip(board["model"], board["rating"], strict=True):
        assert rating == pytest.approx(reference[model], abs=0.01)


def test_ratings_recover_known_strengths_with_shrinking_error():
    strengths = np.linspace(-1.5, 1.5, 10)
    true_elo = 1000 + ELO_PER_LOGIT * (strengths - strengths.mean())
    errors = []
    for n_votes in (1_000, 10_000, 100_000):
        board = compute_board(
            draw_votes(strengths, n_votes, seed=n_votes), RatingOptions(intervals="closed_form")
        )
        rating = board.set_index("model").loc[model_names(10), "rating"].to_numpy()
        errors.append(float(np.sqrt(np.mean((rating - true_elo) ** 2))))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 6.0  # ≈ 2.5 Elo expected with 20,000 votes per model
    assert errors[0] < 60.0


def test_davidson_recovers_strengths_and_tie_rate_from_davidson_votes():
    rng = np.random.default_rng(5)
    strengths, nu, m, n = np.array([0.8, 0.2, -0.3, -0.7]), 0.9, 4, 60_000
    left = rng.integers(0, m, n)
    right = (left + rng.integers(1, m, n)) % m
    d = strengths[left] - strengths[right]
    weights = np.stack([np.exp(d / 2), np.exp(-d / 2), np.full(n, nu)])
    probabilities = weights / weights.sum(axis=0)
    outcome_index = (rng.random(n)[None] > np.cumsum(probabilities, axis=0)).sum(axis=0)
    names = model_names(m)
    votes = draw_votes(strengths, n, seed=0).assign(
        model_left=names[left],
        model_right=names[right],
        outcome=np.array(["left", "right", "tie"])[outcome_index],
    )
    counts = tally_votes(votes).pair_counts(RatingOptions())
    fit = bt.fit(counts, davidson=True)
    assert np.exp(fit.tau) == pytest.approx(nu, rel=0.05)
    assert np.abs(fit.theta - (strengths - strengths.mean())).max() < 0.04


def coverage(
    options: RatingOptions, n_arenas: int, *, n_models: int = 6, n_votes: int = 1200
) -> float:
    """Share of 95% intervals that hold the true centred rating, over seeded synthetic arenas."""
    covered = total = 0
    for arena in range(n_arenas):
        strengths = np.random.default_rng([7, arena]).normal(0, 0.8, n_models)
        board = compute_board(draw_votes(strengths, n_votes, seed=arena), options)
        board = board.set_index("model").loc[model_names(n_models)]
        truth = 1000 + ELO_PER_LOGIT * (strengths - strengths.mean())
        covered += int(((board["lower"] <= truth) & (truth <= board["upper"])).sum())
        total += n_models
    return covered / total


@pytest.mark.slow
def test_closed_form_intervals_cover_the_truth_95_percent():
    assert 0.93 <= coverage(RatingOptions(intervals="closed_form"), 400) <= 0.97


@pytest.mark.slow
def test_bootstrap_intervals_cover_the_truth_95_percent():
    assert 0.93 <= coverage(RatingOptions(bootstrap_rounds=400), 250) <= 0.97


def test_plain_inverse_fisher_would_be_too_wide_with_ties():
    """Why the sandwich: a tie scored as half a win varies less than the binomial assumes."""
    votes = draw_votes(np.linspace(-1, 1, 6), 20_000, seed=9, tie_rate=0.35)
    counts = tally_votes(votes).pair_counts(RatingOptions())
    fit = bt.fit(counts)
    sandwich = np.sqrt(np.diag(bt.sandwich_covariance(counts, fit)))
    d = fit.theta[counts.i] - fit.theta[counts.j]
    n = counts.wins_i + counts.wins_j + counts.ties
    weights = n * expit(d) * expit(-d)
    laplacian = np.zeros((6, 6))
    np.add.at(laplacian, (counts.i, counts.i), weights)
    np.add.at(laplacian, (counts.j, counts.j), weights)
    np.add.at(laplacian, (counts.i, counts.j), -weights)
    np.add.at(laplacian, (counts.j, counts.i), -weights)
    inverse_fisher = np.sqrt(np.diag(np.linalg.pinv(laplacian)))
    assert (sandwich < 0.9 * inverse_fisher).all()
    boot = bt.bootstrap_thetas(counts, fit, 1000, 0, prior_precision=0.0).std(axis=0)
    assert np.allclose(boot, sandwich, rtol=0.1)


@pytest.mark.parametrize("cells", [[0, 3, 500, 2000, 1, 7000, 40], [2, 900, 300, 0, 1100]])
def test_vote_resampler_draws_the_multinomial(cells):
    """The Poissonized resampler is exactly N votes drawn with replacement: whole rows summing to
    N, with the multinomial's means, covariances and chances of an empty cell."""
    cells = np.array(cells, dtype=float)
    resampler = bt.VoteResampler(cells)
    assert resampler.poissonize
    rounds = 200_000
    draws = resampler.draw(np.random.default_rng(3), rounds)
    n, share = cells.sum(), cells / cells.sum()
    assert draws.dtype.kind == "i" and (draws.sum(axis=1) == n).all()
    assert (draws[:, cells == 0] == 0).all()
    standard_error = np.sqrt(n * share * (1 - share) / rounds)
    assert (np.abs(draws.mean(axis=0) - n * share) <= 5 * standard_error + 1e-12).all()
    covariance = n * (np.diag(share) - np.outer(share, share))
    assert np.abs(np.cov(draws.T) - covariance).max() <= 0.02 * np.abs(covariance).max()
    smallest = int(np.argmin(np.where(cells > 0, cells, np.inf)))
    empty = (1 - share[smallest]) ** n
    assert (draws[:, smallest] == 0).mean() == pytest.approx(empty, abs=5 * np.sqrt(empty / rounds))


def test_vote_resampler_falls_back_to_numpy_multinomial():
    for cells in ([3.0, 5.0, 2.0], [400.5, 700.0, 600.0]):  # few votes; not whole votes
        resampler = bt.VoteResampler(np.array(cells))
        assert not resampler.poissonize
        draws = resampler.draw(np.random.default_rng(0), 50)
        assert (draws.sum(axis=1) == round(sum(cells))).all()
