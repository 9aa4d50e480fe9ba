"""The data doctor: what a data set holds, and what a search of it will see.

    tune-gpt data ~/nanoGPT/data/shakespeare_char --tokens-per-trial 2M
    print(doctor(prepare("input.txt"), tokens_per_trial=2_000_000).format())

Reference points for "is my loss normal?": ln(vocab) is the loss of guessing uniformly;
the unigram entropy is the loss of a model that knows only how often each token occurs
(a trained model must beat both). The epochs figure says how often each trial sees every
training token: many epochs on a small corpus is where overfitting starts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from tune_gpt.data.prepared import PreparedData

# More epochs than this per trial: every token seen many times, so val loss can turn up
# (nanoGPT's shakespeare_char config overfits after ~10 epochs at 6x384; small models
# later). A warning, not an error: short corpora are also how people learn.
MANY_EPOCHS = 5.0
# Fewer distinct non-overlapping validation windows than this many eval batches: two
# evaluations draw mostly the same text, so val_loss differences are mostly noise. 5, not
# 10: nanoGPT's own shakespeare_char recipe (111k val tokens = 435 windows of 256, batch 64:
# 6.8 batches) has a val_loss people rightly trust, and it should not be warned about.
MIN_VAL_BATCHES = 5
ENTROPY_SAMPLE = 10_000_000   # tokens of train.bin counted for the unigram entropy


@dataclass
class DataReport:
    name: str
    source: str
    tokenizer: str
    vocab_size: int
    n_train: int
    n_val: int
    ln_vocab: float
    unigram_entropy: float
    tokens_per_trial: int | None = None
    epochs: float | None = None
    block_size: int | None = None
    val_windows: int | None = None   # distinct block_size windows in the val split
    batch_size: int | None = None    # the smallest batch a trial evaluates with
    warnings: list[str] = field(default_factory=list)

    @property
    def many_epochs(self) -> bool:
        return self.epochs is not None and self.epochs > MANY_EPOCHS

    @property
    def small_val(self) -> bool:
        return self.val_windows is not None and self.batch_size is not None and \
            self.val_windows < MIN_VAL_BATCHES * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> DataReport:
        """From meta.json's data_doctor (keys of other versions dropped)."""
        from tune_gpt.trial import known_fields

        return cls(**known_fields(cls, data))

    def format(self) -> str:
        lines = [f"data set {self.name} ({self.source})",
                 f"  tokenizer {self.tokenizer}, vocab {self.vocab_size:,}",
                 f"  train {self.n_train:,} tokens, val {self.n_val:,} tokens",
                 f"  loss references: uniform guessing ln(vocab) = {self.ln_vocab:.3f}, "
                 f"unigram entropy = {self.unigram_entropy:.3f} nats/token"]
        if self.tokens_per_trial:
            lines.append(f"  each trial: {self.tokens_per_trial:,} tokens = {self.epochs:.2f} "
                         f"epochs of the training split")
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def unigram_entropy(data: PreparedData) -> float:
    """Entropy (nats) of the token frequencies of (a prefix of) the training split."""
    import numpy as np

    ids = np.memmap(data.train_path, dtype=np.uint16, mode="r")[:ENTROPY_SAMPLE]
    counts = np.bincount(ids, minlength=1).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def epochs_of(tokens: int, n_train: int) -> float:
    return tokens / max(n_train, 1)


def doctor(data: PreparedData, *, tokens_per_trial: int | None = None,
           block_size: int | None = None, batch_size: int | None = None) -> DataReport:
    rep = DataReport(name=data.name, source=data.source, tokenizer=data.tokenizer,
                     vocab_size=data.vocab_size, n_train=data.n_train, n_val=data.n_val,
                     ln_vocab=math.log(max(data.vocab_size, 2)),
                     unigram_entropy=unigram_entropy(data))
    if tokens_per_trial:
        rep.tokens_per_trial = int(tokens_per_trial)
        rep.epochs = epochs_of(tokens_per_trial, data.n_train)
        if rep.many_epochs:
            rep.warnings.append(
                f"{tokens_per_trial:,} tokens = {rep.epochs:.0f} epochs of a "
                f"{data.n_train:,}-token corpus: overfitting territory; use more data, "
                f"dropout 0.1-0.2, or fewer tokens per trial")
    if block_size and batch_size:
        rep.block_size, rep.batch_size = int(block_size), int(batch_size)
        rep.val_windows = windows = data.n_val // block_size
        if rep.small_val:
            rep.warnings.append(
                f"the val split holds {windows:,} distinct {block_size}-token windows, fewer "
                f"than {MIN_VAL_BATCHES} batches of {batch_size}: val_loss will be noisy; "
                f"give the data set more validation text")
    return rep
