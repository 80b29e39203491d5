"""Methods, one module per family: saliency, group_lasso, l0, vdrop, sbp, sgmcmc, sse, dst."""
