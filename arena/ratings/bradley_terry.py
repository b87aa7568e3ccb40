"""The Bradley–Terry fit on aggregated pair counts: batched Newton MLE, Davidson ties, bootstrap, sandwich."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from scipy.special import expit, log_expit

# Bounds for the Davidson tie parameter log(nu): nu = e^-30 is "no ties at all", e^30 "only ties";
# clipping keeps a bootstrap round whose resample holds no tie from running off to -inf.
TAU_MIN, TAU_MAX = -30.0, 30.0
# Rounds per bootstrap chunk: each chunk has its own seeded generator, so results do not depend on
# how many threads run the chunks.
BOOTSTRAP_CHUNK_ROUNDS = 125
# A refit stops when no strength moves more than this (in logits; 1e-7 logits ≈ 2e-5 Elo).
BOOTSTRAP_STEP_TOL = 1e-7


@dataclass(frozen=True)
class PairCounts:
    """Outcome counts of one comparison graph, one entry per unordered pair i < j that met."""

    n_models: int
    i: np.ndarray  # (K,) int: the lower model index of each pair
    j: np.ndarray  # (K,) int: the higher model index
    wins_i: np.ndarray  # (K,) float: votes i won
    wins_j: np.ndarray  # (K,) float: votes j won
    ties: np.ndarray  # (K,) float: votes neither won

    def subset(self, models: np.ndarray) -> PairCounts:
        """The pairs among `models` (sorted indices), re-indexed 0..len(models)-1."""
        position = np.full(self.n_models, -1)
        position[models] = np.arange(len(models))
        keep = (position[self.i] >= 0) & (position[self.j] >= 0)
        return PairCounts(
            len(models),
            position[self.i[keep]],
            position[self.j[keep]],
            self.wins_i[keep],
            self.wins_j[keep],
            self.ties[keep],
        )

    @cached_property
    def incidence(self) -> sparse.csr_matrix:
        """(K, m): +1 at (pair, i), −1 at (pair, j); scatters pair values onto models."""
        k = np.arange(len(self.i))
        rows, cols = np.concatenate([k, k]), np.concatenate([self.i, self.j])
        values = np.concatenate([np.ones(len(k)), -np.ones(len(k))])
        return sparse.csr_matrix((values, (rows, cols)), shape=(len(k), self.n_models))

    @cached_property
    def laplacian_scatter(self) -> sparse.csr_matrix:
        """(K, m²): scatters pair weights into the flattened weighted graph Laplacian."""
        m, k, i, j = self.n_models, np.arange(len(self.i)), self.i, self.j
        rows = np.concatenate([k, k, k, k])
        cols = np.concatenate([i * m + i, j * m + j, i * m + j, j * m + i])
        values = np.concatenate([np.ones(2 * len(k)), -np.ones(2 * len(k))])
        return sparse.csr_matrix((values, (rows, cols)), shape=(len(k), m * m))


@dataclass(frozen=True)
class Fit:
    """Strengths in logits (sum zero) and what the optimizer reached."""

    theta: np.ndarray  # (m,) logits, centred to sum zero
    tau: float | None  # Davidson log(nu), None for the half-win tie model
    max_abs_gradient: float  # of the (penalized) log-likelihood, in votes
    iterations: int
    prior_precision: float  # 0.0 for the pure MLE


def group_models(counts: PairCounts) -> tuple[int, np.ndarray]:
    """Connected components of the comparison graph: (count, label per model)."""
    return connected_components(
        _adjacency(counts, counts.wins_i + counts.wins_j + counts.ties), directed=False
    )


def mle_exists(counts: PairCounts, *, ties_count: bool = True) -> bool:
    """True when the MLE is finite: no group of models never lost to the models outside it.

    That holds exactly when the "scored against" graph is strongly connected (Zermelo, Ford);
    a tie scores for both sides unless ties are dropped.
    """
    if counts.n_models <= 1:
        return True
    ties = counts.ties if ties_count else np.zeros_like(counts.ties)
    scored_i, scored_j = counts.wins_i + ties > 0, counts.wins_j + ties > 0
    rows = np.concatenate([counts.i[scored_i], counts.j[scored_j]])
    cols = np.concatenate([counts.j[scored_i], counts.i[scored_j]])
    graph = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(counts.n_models,) * 2)
    n_strong, _ = connected_components(graph, directed=True, connection="strong")
    return n_strong == 1


def fit(counts: PairCounts, *, davidson: bool = False, prior_precision: float = 0.0) -> Fit:
    """The (penalized) maximum-likelihood strengths of one connected comparison graph."""
    if counts.n_models == 1:
        return Fit(np.zeros(1), None, 0.0, 0, prior_precision)
    davidson = davidson and counts.ties.sum() > 0  # no tie at all: nu's MLE is 0, plain BT is exact
    tau0 = _initial_tau(counts) if davidson else None
    theta, tau, gradient, iterations = _newton(
        counts,
        counts.wins_i[None],
        counts.wins_j[None],
        counts.ties[None],
        np.full(1, prior_precision),
        np.zeros(counts.n_models),
        tau0,
        gradient_tol=1e-9,
        step_tol=0.0,
        max_iterations=200,
    )
    return Fit(
        theta[0],
        None if tau is None else float(tau[0]),
        float(gradient),
        iterations,
        prior_precision,
    )


def bootstrap_thetas(
    counts: PairCounts,
    point: Fit,
    rounds: int,
    seed: int | tuple[int, ...],
    *,
    prior_precision: float,
) -> np.ndarray:
    """(rounds, m) strengths refitted on multinomial resamples of the vote counts.

    Resampling the pair × outcome count vector multinomially is exactly resampling the votes with
    replacement (see VoteResampler for how it is drawn). All rounds of a chunk are refitted at
    once, starting from the point fit, with the Hessian frozen there; rounds that do not converge
    that way get the full batched Newton.
    """
    resampler = VoteResampler(np.stack([counts.wins_i, counts.wins_j, counts.ties], axis=1).ravel())
    seeds = np.random.SeedSequence(seed).spawn(-(-rounds // BOOTSTRAP_CHUNK_ROUNDS))
    sizes = [
        min(BOOTSTRAP_CHUNK_ROUNDS, rounds - k * BOOTSTRAP_CHUNK_ROUNDS) for k in range(len(seeds))
    ]

    def run_chunk(seed_and_size: tuple[np.random.SeedSequence, int]) -> np.ndarray:
        chunk_seed, size = seed_and_size
        draws = resampler.draw(np.random.default_rng(chunk_seed), size).reshape(size, -1, 3)
        wins_i, wins_j, ties = draws[:, :, 0], draws[:, :, 1], draws[:, :, 2]  # whole votes
        precision = _round_precisions(counts, wins_i, wins_j, ties, prior_precision)
        if point.tau is None:
            theta, converged = _chord_refit_half_wins(
                counts, wins_i + ties / 2, wins_i + wins_j + ties, precision, point, inverse_hessian
            )
        else:
            wins_i, wins_j, ties = (column.astype(float) for column in (wins_i, wins_j, ties))
            theta, converged = _chord_refit(
                counts, wins_i, wins_j, ties, precision, point, inverse_hessian
            )
        if not converged.all():  # far from the point fit: full Newton with its safeguards
            redo = ~converged
            theta[redo], _, _, _ = _newton(
                counts,
                wins_i[redo].astype(float),
                wins_j[redo].astype(float),
                ties[redo].astype(float),
                precision[redo],
                point.theta,
                point.tau,
                gradient_tol=0.0,
                step_tol=BOOTSTRAP_STEP_TOL,
                max_iterations=50,
            )
        return theta

    inverse_hessian = _point_inverse_hessian(counts, point)
    workers = min(len(seeds), os.cpu_count() or 1)
    if workers <= 1:
        return np.concatenate([run_chunk(item) for item in zip(seeds, sizes, strict=True)])
    with ThreadPoolExecutor(workers) as pool:  # numpy's sampling and linear algebra release the GIL
        return np.concatenate(list(pool.map(run_chunk, zip(seeds, sizes, strict=True))))


class VoteResampler:
    """Draws of N votes with replacement from N votes, as counts per cell (pair × outcome).

    That is a Multinomial(N, counts / N) draw. numpy draws one as a chain of one binomial per
    cell, which dominated the bootstrap; this draws the same distribution in about two thirds of
    the time by Poissonization, with no approximation beyond numpy's own samplers:

    1. Draw every cell's count independently from Poisson(μ · counts / N), μ = N − 2√N. Given
       their sum T, such counts are exactly a Multinomial(T, counts / N) draw: T votes resampled.
    2. If T ≤ N (97.7% of rounds), draw the N − T missing votes one at a time, each a uniformly
       chosen vote of the N; added up that is N votes resampled.
    3. If T > N, discard the round's draw and let numpy draw the multinomial directly.

    Either way a round is exactly Multinomial(N, counts / N). The price is a table of each vote's
    cell (2 bytes a vote). Counts that are not whole votes, or too few votes for step 1 to help,
    go to numpy's multinomial directly.
    """

    SHORTFALL_SDS = 2.0  # μ is this many standard deviations of T below N
    MIN_VOTES = 1024

    def __init__(self, cells: np.ndarray) -> None:
        whole = np.rint(cells)
        self.total = int(round(cells.sum()))
        self.shares = cells / cells.sum()
        self.poissonize = bool(np.array_equal(whole, cells)) and self.total >= self.MIN_VOTES
        if self.poissonize:
            self.means = (self.total - self.SHORTFALL_SDS * np.sqrt(self.total)) * self.shares
            # The cell of each vote, so that drawing a vote is one uniform integer.
            code = np.uint16 if len(cells) <= 1 << 16 else np.int64
            self.cell_of_vote = np.repeat(np.arange(len(cells), dtype=code), whole.astype(np.int64))

    def draw(self, rng: np.random.Generator, rounds: int) -> np.ndarray:
        """(rounds, cells) int64 counts, each row summing to N."""
        if not self.poissonize:
            return rng.multinomial(self.total, self.shares, size=rounds)
        k = len(self.shares)
        draws = rng.poisson(self.means, size=(rounds, k))
        missing = self.total - draws.sum(axis=1)
        over = missing < 0
        if over.any():
            draws[over] = rng.multinomial(self.total, self.shares, size=int(over.sum()))
            missing[over] = 0
        votes = self.cell_of_vote[rng.integers(0, self.total, size=int(missing.sum()))]
        where = np.repeat(np.arange(rounds) * k, missing) + votes
        draws += np.bincount(where, minlength=rounds * k).reshape(rounds, k)
        return draws


def sandwich_covariance(counts: PairCounts, point: Fit) -> np.ndarray:
    """(m, m) robust covariance of the centred strengths: H⁻¹ B H⁻¹ over single votes.

    H is the observed information, B the summed outer products of per-vote scores; with ties scored
    as half wins the two differ (a tie carries less variance than the binomial assumes), so the
    plain inverse Fisher would be too wide.
    """
    m = counts.n_models
    if m == 1:
        return np.zeros((1, 1))
    d = point.theta[counts.i] - point.theta[counts.j]
    tau = None if point.tau is None else np.array([point.tau])
    fit_wins_i, fit_wins_j = _half_win_counts(counts, tau is None)
    _, _, hessian = _evaluate(
        counts, fit_wins_i[None], fit_wins_j[None], _tie_counts(counts, tau)[None], d[None], tau
    )
    hessian = hessian[0]
    hessian[:m, :m] += (
        point.prior_precision * np.eye(m) + 1.0 / m
    )  # gauge: sum of strengths is zero
    # Per-vote scores for the three outcomes (i wins, j wins, tie) of every pair.
    if tau is None:
        p = np.exp(log_expit(d))
        score_d = np.stack([1 - p, -p, 0.5 - p])
        weights = np.stack([counts.wins_i, counts.wins_j, counts.ties])
        meat_dd = (weights * score_d**2).sum(0)
        meat = _scatter_laplacian(counts, meat_dd[None], m)[0]
    else:
        p_i, p_j, p_t = _davidson_probabilities(d, tau[0])
        half_gap = (p_i - p_j) / 2
        score_d = np.stack([0.5 - half_gap, -0.5 - half_gap, -half_gap])
        score_tau = np.stack([-p_t, -p_t, 1 - p_t])
        weights = np.stack([counts.wins_i, counts.wins_j, counts.ties])
        meat = np.zeros((m + 1, m + 1))
        meat[:m, :m] = _scatter_laplacian(counts, (weights * score_d**2).sum(0)[None], m)[0]
        cross = _scatter_incidence(counts, (weights * score_d * score_tau).sum(0)[None], m)[0]
        meat[:m, m] = meat[m, :m] = cross
        meat[m, m] = (weights * score_tau**2).sum()
    bread = np.linalg.inv(hessian)
    covariance = bread @ meat @ bread
    return covariance[:m, :m]


def _point_inverse_hessian(counts: PairCounts, point: Fit) -> np.ndarray:
    """Inverse of the gauge-fixed negated Hessian at the point fit, on the full counts."""
    m = counts.n_models
    tau = None if point.tau is None else np.array([point.tau])
    fit_wins_i, fit_wins_j = _half_win_counts(counts, tau is None)
    d = (point.theta[counts.i] - point.theta[counts.j])[None]
    _, _, hessian = _evaluate(
        counts, fit_wins_i[None], fit_wins_j[None], _tie_counts(counts, tau)[None], d, tau
    )
    hessian = hessian[0]
    hessian[:m, :m] += point.prior_precision * np.eye(m) + 1.0 / m
    return np.linalg.inv(hessian)


def _chord_refit(
    counts, wins_i, wins_j, ties, precision, point, inverse_hessian, max_iterations=30
):
    """Refit bootstrap rounds by Newton's iteration with the Hessian frozen at the point fit.

    A resample's optimum lies about one standard error from the point fit, where the Hessian
    differs by a few percent, so each step gains one to two digits for the cost of a gradient.
    Returns the strengths (R, m) and which rounds converged; the fixed point is the exact MLE.
    """
    m = counts.n_models
    davidson = point.tau is not None
    fit_wins_i, fit_wins_j = (
        (wins_i, wins_j) if davidson else (wins_i + ties / 2, wins_j + ties / 2)
    )
    theta = np.repeat(point.theta[None], len(wins_i), axis=0)
    tau = np.full(len(wins_i), point.tau) if davidson else None
    size = np.full(len(wins_i), np.inf)
    for _ in range(max_iterations):
        d = theta[:, counts.i] - theta[:, counts.j]
        _, gradient, _ = _evaluate(counts, fit_wins_i, fit_wins_j, ties, d, tau, full=False)
        gradient[:, :m] -= precision[:, None] * theta
        step = gradient @ inverse_hessian
        step[:, :m] -= step[:, :m].mean(axis=1, keepdims=True)
        theta = theta + step[:, :m]
        if davidson:
            tau = np.clip(tau + step[:, m], TAU_MIN, TAU_MAX)
        size = np.abs(step).max(axis=1)
        if (size <= BOOTSTRAP_STEP_TOL).all() or not np.isfinite(size).all():
            break
    converged = size <= BOOTSTRAP_STEP_TOL
    return theta, converged


def _chord_refit_half_wins(
    counts, scores, totals, precision, point, inverse_hessian, max_iterations=30
):
    """_chord_refit for the half-win tie model, where a round's data are scores and totals (R, K).

    The gradient is Dᵀ(scores − totals·σ(Dθ)) − precision·θ with D the pair × model incidence.
    """
    incidence = counts.incidence
    theta = np.repeat(point.theta[None], len(scores), axis=0)
    p = _win_probabilities(counts, point.theta[None])
    size = np.full(len(scores), np.inf)
    for _ in range(max_iterations):
        gradient = np.asarray(incidence.T @ (scores - totals * p).T).T
        gradient -= precision[:, None] * theta
        step = gradient @ inverse_hessian
        step -= step.mean(axis=1, keepdims=True)
        theta += step
        size = np.abs(step).max(axis=1)
        if (size <= BOOTSTRAP_STEP_TOL).all() or not np.isfinite(size).all():
            break
        p = _win_probabilities(counts, theta)
    return theta, size <= BOOTSTRAP_STEP_TOL


def _win_probabilities(counts: PairCounts, theta: np.ndarray) -> np.ndarray:
    """(R, K) σ(θ_i − θ_j) as e^θ_i / (e^θ_i + e^θ_j): m exponentials per round instead of K."""
    if np.abs(theta).max(initial=0.0) > 300:  # e^θ could overflow: the plain logistic
        return expit(theta[:, counts.i] - theta[:, counts.j])
    strength = np.exp(theta)
    stronger = strength[:, counts.i]
    return stronger / (stronger + strength[:, counts.j])


# --- the batched Newton iteration -----------------------------------------------------------------


def _newton(
    counts: PairCounts,
    wins_i: np.ndarray,
    wins_j: np.ndarray,
    ties: np.ndarray,
    prior_precision: np.ndarray,
    theta0: np.ndarray,
    tau0: float | None,
    *,
    gradient_tol: float,
    step_tol: float,
    max_iterations: int,
) -> tuple[np.ndarray, np.ndarray | None, float, int]:
    """Maximize R independent penalized likelihoods at once; returns theta (R, m), tau, |grad|, iterations.

    Newton's step solves H·δ = g per round; the Laplacian H is singular along "all strengths up by
    one", so 11ᵀ/m is added, which leaves the step unchanged and keeps strengths summing to zero.
    A step that lowers a round's likelihood is halved until it does not (concavity makes that finite).
    """
    m, rounds = counts.n_models, wins_i.shape[0]
    davidson = tau0 is not None
    fit_wins_i, fit_wins_j = (
        (wins_i, wins_j) if davidson else (wins_i + ties / 2, wins_j + ties / 2)
    )
    theta = np.repeat((theta0 - theta0.mean())[None], rounds, axis=0)
    tau = np.full(rounds, tau0) if davidson else None
    state = _objective(counts, fit_wins_i, fit_wins_j, ties, theta, tau, prior_precision)
    gradient_norm, iterations = float(np.abs(state[1]).max(initial=0.0)), 0
    while iterations < max_iterations and gradient_norm > gradient_tol:
        loglik, gradient, hessian = state
        hessian[:, :m, :m] += 1.0 / m
        hessian[:, np.arange(m), np.arange(m)] += prior_precision[:, None]
        step = np.linalg.solve(hessian, gradient[..., None])[..., 0]
        step[:, :m] -= step[:, :m].mean(axis=1, keepdims=True)
        iterations += 1
        if np.abs(step).max(initial=0.0) <= step_tol:
            # Newton converges quadratically: a step this small needs no likelihood check and
            # leaves a gradient far below the tolerance, so it is taken without re-evaluating.
            theta = theta + step[:, :m]
            tau = None if tau is None else np.clip(tau + step[:, m], TAU_MIN, TAU_MAX)
            break
        theta, tau, state = _accept_steps(
            counts, fit_wins_i, fit_wins_j, ties, theta, tau, step, loglik, prior_precision
        )
        gradient_norm = float(np.abs(state[1]).max(initial=0.0))
    return theta, tau, gradient_norm, iterations


def _accept_steps(counts, fit_wins_i, fit_wins_j, ties, theta, tau, step, loglik, precision):
    """Take each round's Newton step, halving it in the rounds where the likelihood would fall."""
    m = counts.n_models
    scale = np.ones(len(theta))
    for _ in range(60):
        new_theta = theta + scale[:, None] * step[:, :m]
        new_tau = None if tau is None else np.clip(tau + scale * step[:, m], TAU_MIN, TAU_MAX)
        new_state = _objective(counts, fit_wins_i, fit_wins_j, ties, new_theta, new_tau, precision)
        # The tolerance lets rounds at the optimum, where rounding noise dominates, stay put.
        worse = new_state[0] < loglik - 1e-9 * (1 + np.abs(loglik))
        if not worse.any():
            return new_theta, new_tau, new_state
        scale[worse] /= 2
    return new_theta, new_tau, new_state


def _objective(counts, fit_wins_i, fit_wins_j, ties, theta, tau, precision):
    """Penalized log-likelihood (R,), gradient (R, m[+1]) and negated Hessian per round."""
    d = theta[:, counts.i] - theta[:, counts.j]
    loglik, gradient, hessian = _evaluate(counts, fit_wins_i, fit_wins_j, ties, d, tau)
    loglik = loglik - 0.5 * precision * (theta**2).sum(axis=1)
    gradient[:, : counts.n_models] -= precision[:, None] * theta
    return loglik, gradient, hessian


def _evaluate(counts, fit_wins_i, fit_wins_j, ties, d, tau, full: bool = True):
    """Log-likelihood, gradient and negated Hessian in the strengths (and tau for Davidson).

    With full=False only the gradient is computed (the others are None).
    """
    m = counts.n_models
    if tau is None:
        n = fit_wins_i + fit_wins_j
        p = expit(d)
        gradient = _scatter_incidence(counts, fit_wins_i - n * p, m)
        if not full:
            return None, gradient, None
        # log σ(d) from p is cheaper than log_expit and exact enough for comparing likelihoods;
        # log σ(−d) = log σ(d) − d.
        log_p = np.log(np.maximum(p, 1e-300))
        loglik = (fit_wins_i * log_p + fit_wins_j * (log_p - d)).sum(axis=1)
        return loglik, gradient, _scatter_laplacian(counts, n * p * (1 - p), m)
    t = tau[:, None]
    n = fit_wins_i + fit_wins_j + ties
    log_denominator = np.logaddexp(np.logaddexp(d / 2, -d / 2), t)
    loglik = (fit_wins_i * (d / 2) - fit_wins_j * (d / 2) + ties * t - n * log_denominator).sum(
        axis=1
    )
    p_i, p_j, p_t = _davidson_probabilities(d, t)
    gap = p_i - p_j
    grad_d = (fit_wins_i - fit_wins_j) / 2 - n * gap / 2
    gradient = np.empty((len(d), m + 1))
    gradient[:, :m] = _scatter_incidence(counts, grad_d, m)
    gradient[:, m] = (ties - n * p_t).sum(axis=1)
    if not full:
        return None, gradient, None
    hessian = np.empty((len(d), m + 1, m + 1))
    hessian[:, :m, :m] = _scatter_laplacian(counts, n / 4 * (p_i + p_j - gap**2), m)
    cross = _scatter_incidence(counts, -n * gap * p_t / 2, m)
    hessian[:, :m, m] = hessian[:, m, :m] = cross
    # A tiny floor keeps the system solvable when a resample's tie probability underflows.
    hessian[:, m, m] = (n * p_t * (1 - p_t)).sum(axis=1) + 1e-12
    return loglik, gradient, hessian


def _davidson_probabilities(d, tau):
    """P(i wins), P(j wins), P(tie) with strengths gap d and tie parameter nu = e^tau."""
    log_denominator = np.logaddexp(np.logaddexp(d / 2, -d / 2), tau)
    return (
        np.exp(d / 2 - log_denominator),
        np.exp(-d / 2 - log_denominator),
        np.exp(tau - log_denominator),
    )


def _initial_tau(counts: PairCounts) -> float:
    """Davidson's nu for equal strengths: P(tie) = nu / (2 + nu)."""
    share = counts.ties.sum() / (counts.wins_i.sum() + counts.wins_j.sum() + counts.ties.sum())
    share = min(max(share, 1e-6), 1 - 1e-6)
    return float(np.clip(np.log(2 * share / (1 - share)), TAU_MIN, TAU_MAX))


def _half_win_counts(counts: PairCounts, half: bool) -> tuple[np.ndarray, np.ndarray]:
    if not half:
        return counts.wins_i, counts.wins_j
    return counts.wins_i + counts.ties / 2, counts.wins_j + counts.ties / 2


def _tie_counts(counts: PairCounts, tau) -> np.ndarray:
    return counts.ties if tau is not None else np.zeros_like(counts.ties)


def _round_precisions(counts, wins_i, wins_j, ties, prior_precision: float) -> np.ndarray:
    """The prior per bootstrap round: on when the data need it or a resample lost a needed pair."""
    precision = np.full(len(wins_i), prior_precision)
    if prior_precision > 0:
        return precision
    scored = counts.wins_i + counts.ties > 0, counts.wins_j + counts.ties > 0
    lost = ((wins_i + ties == 0) & scored[0]) | ((wins_j + ties == 0) & scored[1])
    for r in np.flatnonzero(lost.any(axis=1)):
        resample = PairCounts(counts.n_models, counts.i, counts.j, wins_i[r], wins_j[r], ties[r])
        if group_models(resample)[0] > 1 or not mle_exists(resample):
            precision[r] = fallback_precision()
    return precision


def fallback_precision() -> float:
    """The Gaussian prior used where the MLE does not exist: sd 400 Elo = ln 10 logits."""
    return 1.0 / np.log(10.0) ** 2


# --- scatter pair quantities into model vectors and matrices --------------------------------------


def _scatter_incidence(counts: PairCounts, per_pair: np.ndarray, m: int) -> np.ndarray:
    """(R, K) pair values → (R, m): +value to model i, −value to model j."""
    return np.asarray((counts.incidence.T @ per_pair.T).T)


def _scatter_laplacian(counts: PairCounts, per_pair: np.ndarray, m: int) -> np.ndarray:
    """(R, K) pair weights → (R, m, m) weighted graph Laplacians."""
    return np.asarray((counts.laplacian_scatter.T @ per_pair.T).T).reshape(len(per_pair), m, m)


def _adjacency(counts: PairCounts, weights: np.ndarray) -> sparse.csr_matrix:
    met = weights > 0
    return sparse.csr_matrix(
        (np.ones(met.sum()), (counts.i[met], counts.j[met])), shape=(counts.n_models,) * 2
    )
