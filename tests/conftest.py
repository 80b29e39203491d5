"""Every test process pins the CPU kernels before torch computes anything (see sparsity_lab/__init__.py)."""

import sparsity_lab  # noqa: F401  (sets ATEN_CPU_CAPABILITY, MKL_CBWR and ONEDNN_MAX_CPU_ISA)
