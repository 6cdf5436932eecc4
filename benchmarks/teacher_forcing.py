"""Teacher-forcing train-step throughput of the translation network: per-step loop vs the fused path.

Run on an otherwise idle machine:

    python benchmarks/teacher_forcing.py            # 10 timed steps, 2 warm-up steps, 5 repeats
    python benchmarks/teacher_forcing.py --quick    # a smoke run (seconds)

The network has the translation-tatoeba recipe's sizes (embedding 128, BiGRU encoder 128 per direction,
GRU decoder 256, additive attention 128, attentional vector 256, linear bridge, a 4,000-subword joint
vocabulary, batch 32) in train mode with the recipe's dropout. With input feeding off it times one train
step (forward, label-smoothed cross-entropy over the real target positions, backward) through the
per-step Python loop and through the fused path (the whole target through the decoder's fused RNN, then
attention for all positions at once), on the same weights and batches; for reference, the recipe's own
setting (input feeding on, which needs the loop) at the same sizes. Throughput counts target tokens
(the positions the loss scores: subwords plus ``</s>``). Synthetic batches: target lengths drawn
uniformly like Tatoeba's (10–20 subwords) and longer ones (40–49, so T = 50 with ``<s>``); the order of
the paths alternates between repeats, each figure is the median over repeats, at 1 and 2 threads.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import time

import torch
from torch.nn import functional as F

from seqtasks.encoders import GRUEncoder
from seqtasks.networks.seq2seq import BOS_INDEX, EOS_INDEX, PAD_INDEX, Seq2SeqNetwork

VOCAB = 4000
LENGTHS = {"10–20": (10, 20), "40–49 (T=50)": (40, 49)}
PATHS = ("step loop", "fused", "input feeding (loop)")


def build(input_feeding: bool) -> Seq2SeqNetwork:
    """The translation-tatoeba recipe's network, with or without input feeding."""
    torch.manual_seed(0)
    return Seq2SeqNetwork(
        VOCAB,
        VOCAB,
        PAD_INDEX,
        encoder=lambda size: GRUEncoder(size, hidden_size=128, bidirectional=True),
        decoder=lambda size: GRUEncoder(size, hidden_size=256, bidirectional=False),
        attention="additive",
        embedding_dim=128,
        attention_hidden_size=128,
        attentional_size=256,
        input_feeding=input_feeding,
        bridge="linear",
        dropout=0.3,
        embedding_dropout=0.1,
    ).train()


def make_batch(batch: int, words: tuple[int, int], generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Source and ``<s> w… </s>`` target ids, both with lengths drawn uniformly in ``words``."""
    low, high = words
    source_lengths = torch.randint(low, high + 1, (batch,), generator=generator)
    source = torch.randint(4, VOCAB, (batch, int(source_lengths.max())), generator=generator)
    source[torch.arange(source.size(1)).unsqueeze(0) >= source_lengths.unsqueeze(1)] = PAD_INDEX
    target_words = torch.randint(low, high + 1, (batch,), generator=generator)
    target = torch.randint(4, VOCAB, (batch, int(target_words.max()) + 2), generator=generator)
    positions = torch.arange(target.size(1)).unsqueeze(0)
    target[:, 0] = BOS_INDEX
    target[positions == target_words.unsqueeze(1) + 1] = EOS_INDEX
    target[positions > target_words.unsqueeze(1) + 1] = PAD_INDEX
    return {
        "source": source,
        "source_lengths": source_lengths,
        "target_in": target[:, :-1].clone(),
        "target_out": target[:, 1:].clone(),
    }


def train_step(network: Seq2SeqNetwork, batch: dict[str, torch.Tensor], step_loop: bool) -> None:
    network.zero_grad(set_to_none=True)
    logits = network(batch["source"], batch["source_lengths"], batch["target_in"], step_loop=step_loop)
    loss = F.cross_entropy(
        logits.reshape(-1, VOCAB),
        batch["target_out"].reshape(-1),
        ignore_index=PAD_INDEX,
        label_smoothing=0.1,
    )
    loss.backward()


def tokens_per_second(
    network: Seq2SeqNetwork, batches: list[dict[str, torch.Tensor]], step_loop: bool, warmup: int
) -> float:
    for batch in batches[:warmup]:
        train_step(network, batch, step_loop)
    tokens = sum(int((batch["target_out"] != PAD_INDEX).sum()) for batch in batches)
    start = time.perf_counter()
    for batch in batches:
        train_step(network, batch, step_loop)
    return tokens / (time.perf_counter() - start)


def max_logit_difference(network: Seq2SeqNetwork, batch: dict[str, torch.Tensor]) -> float:
    """Eval mode (no dropout): the largest |fused − loop| over every logit, padding positions included."""
    network.eval()
    with torch.no_grad():
        args = (batch["source"], batch["source_lengths"], batch["target_in"])
        difference = (network(*args) - network(*args, step_loop=True)).abs().max()
    network.train()
    return float(difference)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10, help="timed train steps per measurement")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before each measurement")
    parser.add_argument("--repeats", type=int, default=5, help="measurements per path (median reported)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch.set_num_threads values")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 steps, 1 warm-up, 1 repeat")
    options = parser.parse_args(argv)
    if options.quick:
        options.steps, options.warmup, options.repeats = 2, 1, 1

    plain, feeding = build(input_feeding=False), build(input_feeding=True)
    runs = {"step loop": (plain, True), "fused": (plain, False), "input feeding (loop)": (feeding, True)}
    rows = []
    for threads in options.threads:
        torch.set_num_threads(threads)
        for label, words in LENGTHS.items():
            generator = torch.Generator().manual_seed(len(label))
            batches = [make_batch(options.batch_size, words, generator) for _ in range(options.steps)]
            difference = max_logit_difference(plain, batches[0])
            figures: dict[str, list[float]] = {path: [] for path in PATHS}
            for repeat in range(options.repeats):
                order = PATHS if repeat % 2 == 0 else PATHS[::-1]
                for path in order:
                    network, step_loop = runs[path]
                    figures[path].append(tokens_per_second(network, batches, step_loop, options.warmup))
            medians = {path: statistics.median(values) for path, values in figures.items()}
            for path in PATHS:
                rows.append(
                    (threads, label, path, medians[path], medians[path] / medians["step loop"], difference)
                )

    print(
        f"Teacher-forcing train step (forward + loss + backward), translation-tatoeba sizes, batch "
        f"{options.batch_size}; {platform.machine()} {platform.system()}, torch {torch.__version__}, "
        f"{datetime.date.today()}; median of {options.repeats} × {options.steps} steps.\n"
    )
    print(
        "| threads | target subwords | path | target tokens/s | vs step loop | max abs logit diff (fused) |"
    )
    print("|---:|---|---|---:|---:|---:|")
    for threads, label, path, speed, ratio, difference in rows:
        diff = f"{difference:.1e}" if path == "fused" else ""
        print(f"| {threads} | {label} | {path} | {speed:,.0f} | {ratio:.2f}× | {diff} |")


if __name__ == "__main__":
    main()
