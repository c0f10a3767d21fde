"""The performance benchmark behind `python -m mfcbench bench [--device cpu|cuda] [--quick] [--out reports/bench.csv]`.

The performance benchmark (a benchmark, not a test): each comparison is measured side by side in
one run, and every row carries the machine's description. Needs only torch and this package (no
fvcore, pandas or snakemake on this path; CSV via the csv module).

Rows are collected by `bench_rows.Bench`; the comparisons live by what they run: one layer
(`bench_layers`), one training step (`bench_steps`), whole training cells (`bench_cells`).

glibc's malloc returns large blocks to the OS after every free, so big-tensor timings on CPU are
dominated by page faults; every mfcbench program starts with MALLOC_MMAP_THRESHOLD_ /
MALLOC_TRIM_THRESHOLD_ set (mfcbench.cli) and the rows record them.
"""

from .bench_cells import bench_fmsgd_vs_sgd, bench_table4_train_time
from .bench_layers import bench_full_mixing, bench_mfc_vs_conv, bench_packed_fft, bench_traffic_floor
from .bench_steps import bench_msgd_calls, bench_msgd_vs_sgd

# The training cells run first: on CPU their peak memory is the process's max RSS so far.
COMPARISONS = {
    "fmsgd_vs_sgd": bench_fmsgd_vs_sgd,
    "mfc_vs_conv": bench_mfc_vs_conv,
    "traffic_floor": bench_traffic_floor,
    "full_mixing": bench_full_mixing,
    "msgd_vs_sgd": bench_msgd_vs_sgd,
    "packed_fft": bench_packed_fft,
    "table4_train_time": bench_table4_train_time,
    "msgd_calls": bench_msgd_calls,
}
