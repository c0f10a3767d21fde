"""Measurements: FLOP counts (fvcore + FFT/complex handles) and timings (torch.utils.benchmark).

`flops` needs fvcore; `timing` needs only torch, so the benchmark (`mfcbench.measure.bench`) runs on a
machine that has nothing but torch and this package. Submodules are imported explicitly.
"""
