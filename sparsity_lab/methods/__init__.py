"""Methods, one module per family, all behind one contract (base.py) and one registry (registry.py).

base          MethodResult, Method, the two score selectors, pruning paths
magnitude     magnitude by weight / neuron / filter, filter L1
second_order  OBD, OBS, Kron-OBD and Kron-OBS (the curvature comes from sparsity_lab.curvature)
obs           Optimal Brain Surgeon's algebra: the compensating update, one weight or a block at a time
lottery       iterative magnitude pruning with rewinding, and its controls
at_init       pruning at initialisation from one batch's gradients: SNIP, GraSP; random pruning
dst           dynamic sparse training, masks that change while training: SET, DeepR, DSR
group_lasso   group penalties, the proximal step, Structured Sparsity Learning
slimming      network slimming: L1 on BatchNorm scales
sss           sparse structure selection: a learned scaling factor per unit (a gate)
sensitivity   sensitivity-driven regularisation: decay what the outputs ignore, then threshold |w|
decorrelation group lasso plus a penalty on the correlation of the surviving units
l0            L0 regularisation with hard-concrete gates per unit or per weight
vdrop         sparse variational dropout: a dropout rate per weight
sbp           structured Bayesian pruning: truncated log-normal noise per unit, its closed forms
sgmcmc        SGLD, pSGLD, SGHMC samplers and a sample collector
sse           Sparse Structured Ensembles: SGLD under a group sparse prior, prune, retrain, average
sse_lstm      SSE for LSTM language models: untied, tied and ISS groups
quantize      Deep Compression after pruning: k-means weight sharing, exact bits stored (no mask)
huffman       Huffman coding: optimal prefix codes, canonical form, encode and decode
hashing       HashedNets: virtual weight matrices read from a few real weights through a hash (no mask)
distill       knowledge distillation: a student trained on a teacher's softened outputs (no mask)
registry      METHODS: name → Method

    from sparsity_lab.methods import METHODS, MethodResult
"""

from .base import Method, MethodResult, select_groups, select_weights
from .registry import METHODS

__all__ = ["METHODS", "Method", "MethodResult", "select_groups", "select_weights"]
