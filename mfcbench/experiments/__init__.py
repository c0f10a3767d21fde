"""Small standalone experiments that need no training: Figure 3's MFC kernels and Lemma 4's
least-squares fit of a 3x3 convolution by MFC filters. Run with `python -m mfcbench experiment`."""
