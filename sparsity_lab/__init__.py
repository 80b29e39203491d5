"""sparsity_lab.

Importing the package pins the CPU kernels PyTorch, MKL and oneDNN choose to AVX2 (where the variables are not set
already), so a run gives the same floating-point sums on any x86 machine: the cached results the lessons compare
with were made that way, and an AVX-512 machine otherwise rounds differently, which training amplifies (a weight
0.02 away after a few epochs). It takes effect only if torch has not run an operation yet: import sparsity_lab
before computing anything. Set ATEN_CPU_CAPABILITY=default (or avx512) yourself to choose otherwise.
"""

import os

for _name, _value in (("ATEN_CPU_CAPABILITY", "avx2"), ("MKL_CBWR", "AVX2"), ("ONEDNN_MAX_CPU_ISA", "AVX2")):
    os.environ.setdefault(_name, _value)
