"""The claim checks, grouped by kind; importing this package registers them all in `engine.CHECKS`.

- `measurements`: deterministic or measured numbers (Tables 1, 2, 11, 15, Lemma 4): trends, formulas, printed cells.
- `cost`: #WU closed forms and savings (Appendix C, Table 3).
- `quality`: trained-cell comparisons against SGD (Tables 3-8): similar quality, absolute values.
- `time`: time to target (AlgoPerf): multiscale reaches SGD's quality at fewer #WU (and seconds).
- `experiments`: Table 9 (SAM) and Figure 8 (DDPM).
- `equal`: beyond the paper: multiscale against SGD at equal #WU; the paper's open readings as claims of their own.
- `ladder`: beyond the paper: the gap to SGD against width, budget and resolution toward the paper's scale.
"""

from . import cost, equal, experiments, ladder, measurements, quality, time  # noqa: F401  (registers the checks)
