"""sparsity_lab."""
