"""How many seeds a claim gets: the one rule every seed plan applies (tables and Figure 8).

- `pair_needed`: the seeds a pair's power calculation asks for. Only a pair the seeds could decide gets
  one: its interval straddles the margin and both sides converged (a side not converged keeps the pair
  undecided whatever the seeds: no count). The test is one-sided at ALPHA when the mean is inside the
  margin (REPRODUCED needs no correction) and at Holm's strictest step, ALPHA / family, when it is
  outside (DEVIATES is Holm-corrected across the claim's pairs).
- `tests_needed`: the same for a claim decided by several seed-paired tests (Figure 8): the largest
  count of the tests not yet decided; a decided test asks for nothing.
- `seed_target` / `grow_to`: how many seeds in all an undecided pair (or claim) grows to after a round:
  the count asked for (one more step when it already has that many), the addition a multiple of `step`,
  never past `cap`; a decided one, or one without a count, keeps the seeds it has.

The count itself is `stats.seeds_needed` (statsmodels' t-test power). `seedplan.plan` applies this rule
to a table's pairs, `checks.experiments.fig8_seed_plan` to Figure 8; `pipeline/seeds.py` turns a plan
into cells. Pure arithmetic on numbers (no pandas, no files).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from . import stats


def pair_needed(mean: float, sd: float, bound: float, family: int, converged: bool = True) -> int | None:
    """Seeds that would decide a straddling pair (worse-signed log-ratio `mean`, spread `sd`, margin
    `bound`) among `family` pairs with a p-value; None when a side has not converged or no count can
    be said (see the module)."""
    if not converged:
        return None
    alpha = stats.ALPHA if mean < bound else stats.ALPHA / family  # Holm's strictest step
    return stats.seeds_needed(mean, sd, bound, alpha)


def tests_needed(tests: Iterable[tuple[float, float, float, bool]]) -> int | None:
    """The largest count over (mean, sd, bound, decided) tests that are not decided yet, at ALPHA;
    None when none asks for a count."""
    counts = [stats.seeds_needed(mean, sd, bound) for mean, sd, bound, decided in tests if not decided]
    counts = [n for n in counts if n is not None]
    return max(counts) if counts else None


def seed_target(n: int, needed: int, cap: int, step: int = 1) -> int:
    """The seed count an undecided pair grows to: `needed` (one more step if it already has that many),
    the addition a multiple of `step`, at most `cap`."""
    want = max(needed, n + 1)
    return min(cap, n + step * math.ceil((want - n) / step))


def grow_to(n: int, needed: int | None, cap: int, step: int = 1, undecided: bool = True) -> int:
    """Seeds in all after this round for a pair (or claim) with `n` seeds: `seed_target` when it is
    undecided and has a count, else `n` (never fewer than it has, whatever `cap`)."""
    if not undecided or needed is None:
        return n
    return max(n, seed_target(n, needed, cap, step))
