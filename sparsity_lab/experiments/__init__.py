"""Sweeps and cached-result generators the lessons read; each module names the command that regenerates its cache.

group_lasso_sweep   SSL vs L1 over λ on LeNet-500-300 (lesson 02's Pareto front)
"""
