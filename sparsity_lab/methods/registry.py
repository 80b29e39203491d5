"""METHODS: every method of the course by name, with what a reader needs to know about it.

    from sparsity_lab.methods import METHODS
    result = METHODS["kron-obs-neurons"](model, data, sparsity=0.5)
    METHODS.table()                                   # a DataFrame: family, structured, needs, target, summary

A registered method is tested by the contract test (tests/unit/test_method_contract.py) without writing a new
test, and run by the benchmark. Names follow ShrinkBench's grid where there is one: criterion, then unit, then
scope ("magnitude-neuron-global"). Add a method by adding an entry here.
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from .at_init import grasp, random_prune, snip
from .base import Method
from .decorrelation import decorrelated
from .dst import deep_rewiring, dynamic_reparameterisation, sparse_evolutionary
from .group_lasso import ssl
from .l0 import l0
from .lottery import lottery
from .magnitude import filter_l1, magnitude
from .sbp import sbp
from .second_order import kron_obd, kron_obs, obd, obs
from .sensitivity import sensitivity
from .slimming import network_slimming
from .sse import sse
from .sse_lstm import sse_lstm
from .sss import sss
from .vdrop import sparse_vd

MLP, CONV, BN = ("mlp", "lenet-300-100", "lenet-500-300"), ("lenet5-caffe",), ("lenet5-caffe-bn",)
LM = ("lstm-lm",)
ANY = MLP + CONV
TINY_SGD = {"stages": ((1, 0.05),), "batch_size": 32}


class Registry(dict):
    """name → Method, with a table for reading."""

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"method": m.name, "family": m.family, "structured": m.structured,
                              "needs": ", ".join(m.needs) or "—", "sparsity counts": m.target or "(the method decides)",
                              "scope": m.scope if m.target else "—", "summary": m.summary} for m in self.values()])


def _entries() -> list[Method]:
    out = []
    for unit, models, structured in (("weight", ANY, False), ("neuron", ANY, True), ("filter", CONV, True)):
        for scope in ("layer", "global"):
            out.append(Method(f"magnitude-{unit}-{scope}", partial(magnitude, unit=unit, scope=scope), "magnitude",
                              structured, (), "groups" if structured else "weights", models,
                              f"smallest {'|w|' if unit == 'weight' else 'L2 norm of whole ' + unit + 's'}"
                              f"{' per layer' if scope == 'layer' else ', one global threshold'} (Han et al. 2015)",
                              scope))
    out += [
        Method("filter-l1", filter_l1, "magnitude", True, (), "groups", CONV,
               "conv filters with the smallest Σ|W| per layer, with what reads their maps (Li et al. 2017)"),
        Method("obd", obd, "second_order", False, ("data", "curvature"), "weights", ANY,
               "least ½·H_qq·θ_q², Gauss–Newton diagonal, one threshold (LeCun et al. 1990)", "global",
               {"examples": 64}),
        Method("obs", obs, "second_order", False, ("data", "curvature"), "weights", ANY,
               "Optimal Brain Surgeon, per-layer Hessian blocks, the other weights move (Hassibi & Stork 1993)",
               "global", {"examples": 64, "block": 8}),
        Method("kron-obd-neurons", partial(kron_obd, unit="neuron"), "second_order", True, ("data", "curvature"),
               "groups", ANY, "whole units by ½·A_jj·c_jᵀ·S·c_j, K-FAC factors (Wang et al. 2019)", "layer",
               {"examples": 64}),
        Method("kron-obd-filters", partial(kron_obd, unit="filter"), "second_order", True, ("data", "curvature"),
               "groups", CONV, "conv filters by ½·S_jj·w_jᵀ·A·w_j, K-FAC factors (Wang et al. 2019)", "layer",
               {"examples": 64}),
        Method("kron-obs-neurons", partial(kron_obs, unit="neuron"), "second_order", True, ("data", "curvature"),
               "groups", ANY, "whole units removed one at a time, the reading layer moves (Wang et al. 2019)",
               "layer", {"examples": 64}),
        Method("kron-obs-filters", partial(kron_obs, unit="filter"), "second_order", True, ("data", "curvature"),
               "groups", CONV, "conv maps removed one at a time, the reading layer moves (Wang et al. 2019)",
               "layer", {"examples": 64}),
    ]
    for variant, summary in (("ticket", "iterative magnitude pruning, survivors rewound to θ₀ (Frankle & Carbin "
                                        "2019)"),
                             ("reinit", "the ticket's masks with new initial values (control; Liu et al. 2019)"),
                             ("random mask", "a random mask with the ticket's per-layer counts (control)")):
        out.append(Method(f"lottery-{variant.replace(' ', '-')}", partial(lottery, variant=variant), "lottery",
                          False, ("data", "training"), None, ANY, summary,
                          quick={"rounds": 2, "epochs": 1, "batch_size": 32}))
    for kind, models in (("neurons", MLP), ("filters", CONV), ("channels", CONV), ("shapes", CONV)):
        out.append(Method(f"ssl-{kind}", partial(ssl, kind=kind), "group_lasso", True, ("data", "training"), None,
                          models, f"group lasso on {kind}, proximal steps to exact zeros (Wen et al. 2016)",
                          quick={"lam": 0.15, **TINY_SGD}))
    out += [
        Method("network-slimming", network_slimming, "slimming", True, ("data", "training"), "groups", BN,
               "L1 on BatchNorm scales γ, cut the smallest |γ| globally (Liu et al. 2017)", "global", TINY_SGD),
        Method("sss-neurons", partial(sss, kinds=("units",)), "sss", True, ("data", "training"), None, ANY,
               "a scaling factor per neuron, L1 by accelerated proximal gradient (Huang & Wang 2018)",
               quick={"gamma": 0.03, "stages": ((10, 0.05),), "batch_size": 32}),
        Method("sss-filters", partial(sss, kinds=("maps",)), "sss", True, ("data", "training"), None, CONV,
               "a scaling factor per conv map, L1 by accelerated proximal gradient (Huang & Wang 2018)",
               quick={"gamma": 0.03, "stages": ((10, 0.05),), "batch_size": 32}),
    ]
    out += [
        Method("sensitivity", sensitivity, "sensitivity", False, ("data", "training"), "weights", ANY,
               "weights decayed by λ·w·max(0, 1 − S), S = Σ_k |∂y_k/∂w| of the logits, then one |w| "
               "threshold (Tartaglione et al. 2018)", "global", {"epochs": 2, "batch_size": 32, "lam": 0.05}),
        Method("decorrelation-neurons", partial(decorrelated, kind="neurons"), "decorrelation", True,
               ("data", "training"), None, MLP, "group lasso on neurons plus γ·mean cos² between the surviving "
               "neurons' incoming weights (Zhu et al. 2018)", quick={"lam": 0.15, "gamma": 1.0, **TINY_SGD}),
        Method("decorrelation-filters", partial(decorrelated, kind="filters"), "decorrelation", True,
               ("data", "training"), None, CONV, "group lasso on conv filters plus γ·mean cos² between the surviving "
               "filters of each layer (Zhu et al. 2018)", quick={"lam": 0.15, "gamma": 1.0, **TINY_SGD}),
    ]
    tiny_l0 = {"epochs": 6, "lr": 3e-3, "gate_lr": 0.2, "batch_size": 32, "drop_rate": 0.2}
    out += [
        Method("l0-units", partial(l0, per="unit"), "l0", True, ("data", "training"), None, ANY,
               "hard-concrete gates on Linear inputs and conv maps, expected L0 penalty (Louizos et al. 2018)",
               quick={"lam": 2.0, **tiny_l0}),
        Method("l0-weights", partial(l0, per="weight"), "l0", False, ("data", "training"), None, ANY,
               "a hard-concrete gate on every weight: the unstructured contrast (Louizos et al. 2018)",
               quick={"lam": 0.5, **tiny_l0}),
        Method("sparse-vd", sparse_vd, "vdrop", False, ("data", "training"), None, ANY,
               "a dropout rate α per weight by variational inference, weights with log α ≥ 3 removed "
               "(Molchanov et al. 2017)", quick={"epochs": 4, "lr": 1e-2, "batch_size": 32, "warmup": (0, 1)}),
        Method("sbp", sbp, "sbp", True, ("data", "training"), None, ANY,
               "truncated log-normal noise per neuron and conv map, units with SNR ≤ 1 removed (Neklyudov et al. "
               "2017)", quick={"epochs": 4, "lr": 3e-3, "noise_lr": 0.3, "batch_size": 32, "n_kl": 50_000}),
        Method("sse", sse, "sse", False, ("data", "training"), "weights", MLP,
               "SGLD under a group sparse prior, each sample pruned by one global magnitude threshold and retrained; "
               "the members' softmaxes averaged (Zhang & Ou 2018)", "global",
               {"samples": 2, "epochs": 3, "burn_in": 1, "lr": 0.1, "lam": 0.01, "retrain_epochs": 1,
                "batch_size": 32}),
    ]
    for name, run, unit, summary in (
            ("snip", snip, "weight", "at initialisation, |g ⊙ θ| on one batch, the lowest removed globally (Lee et al. "
                                     "2019)"),
            ("snip-neurons", snip, "neuron", "at initialisation, whole units by their summed |g ⊙ θ| (SNIP's score "
                                             "over each unit's group)"),
            ("grasp", grasp, "weight", "at initialisation, −θ ⊙ Hg with logits / 200, the highest removed (Wang et al. "
                                       "2020)"),
            ("grasp-neurons", grasp, "neuron", "at initialisation, whole units by their summed −θ ⊙ Hg (GraSP's score "
                                               "over each unit's group)")):
        out.append(Method(name, partial(run, unit=unit), "at_init", unit != "weight", ("data",),
                          "weights" if unit == "weight" else "groups", ANY, summary, "global",
                          {"per_class": 5} if run is grasp else {"examples": 64}))
    out.append(Method("random-at-init", random_prune, "at_init", False, (), "weights", ANY,
                      "at initialisation, the same random fraction of every layer: the baseline (Frankle et al. 2021)",
                      "layer"))
    out += [
        Method("set", sparse_evolutionary, "dst", False, ("data", "training"), "weights", ANY,
               "trained sparse from Erdős–Rényi masks; after each epoch the ζ weights nearest zero on each side are "
               "replaced by random new ones (Mocanu et al. 2018)", "global",
               {"epochs": 2, "batch_size": 32, "lr": 0.05}),
        Method("deepr", deep_rewiring, "dst", False, ("data", "training"), "weights", ANY,
               "trained sparse by SGD with L1 and Langevin noise on fixed-sign connections; one that crosses zero "
               "is replaced by a random dormant one (Bellec et al. 2018)", "layer",
               {"epochs": 1, "batch_size": 32, "temperature": 1e-3}),
        Method("dsr", dynamic_reparameterisation, "dst", False, ("data", "training"), "weights", ANY,
               "trained sparse; every few steps the weights under one adaptive global threshold are pruned and "
               "regrown in the layers that keep most (Mostafa & Wang 2019)", "global",
               {"epochs": 2, "every": 5, "batch_size": 32}),
    ]
    for grouping, what in (("untied", "rows and each gate matrix's columns"), ("tied", "rows and stacked columns"),
                           ("iss", "whole hidden units (Wen et al. 2018)")):
        out.append(Method(f"sse-lstm-{grouping}", partial(sse_lstm, grouping=grouping), "sse_lstm", False,
                          ("data", "training"), "weights", LM,
                          f"SSE on an LSTM language model, the group sparse prior over {what}; each sample pruned by "
                          "one global magnitude threshold and retrained (Zhang & Ou 2018)", "global",
                          {"samples": 2, "epochs": 3, "burn_in": 1, "lr": 0.5, "lam": 0.1, "retrain_epochs": 1,
                           "batch_size": 8, "bptt": 6, "temperature": 0.01}))
    return out


METHODS = Registry((m.name, m) for m in _entries())
