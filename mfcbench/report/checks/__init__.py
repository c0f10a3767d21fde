"""The claim checks, grouped by kind; importing this package registers them all in `engine.CHECKS`.

- `measurements`: deterministic or measured numbers (Tables 1, 2, 11, 15, Lemma 4): trends, formulas, printed cells.
- `cost`: #WU closed forms and savings (Appendix C, Table 3).
- `quality`: trained-cell comparisons against SGD (Tables 3-8): similar quality, time to target, absolute values.
- `experiments`: Table 9 (SAM) and Figure 8 (DDPM).
"""

from . import cost, experiments, measurements, quality  # noqa: F401  (registers the checks)
