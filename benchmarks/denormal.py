"""Why the recipes flush denormals: one AdamW step over an embedding whose Adam moments are denormal.

    python benchmarks/denormal.py                 # the NER recipe's embedding: 50,533 x 100
    python benchmarks/denormal.py --rows 30000 --threads 1
    python benchmarks/denormal.py --checkpoint runs/ner-conll2003/seqtasks/<run>/checkpoints/last.ckpt

An embedding row that a batch does not use gets a zero gradient, so Adam's first moment of that row decays
by beta1 (0.9) every step: from ~1e-3 it enters the denormal range (< 1.2e-38) after ~800 steps and reaches
zero ~150 steps later. x86 arithmetic on denormal operands is many times slower. This times the optimizer
step with the first moment filled with normal (1e-3) or denormal (1e-39) values, with and without
``torch.set_flush_denormal(True)`` (what ``seqtasks.callbacks.FlushDenormal`` turns on while a fit runs),
for the fused and the default (foreach) AdamW. Median of ``--repeats`` timings of ``--steps`` steps.

``--checkpoint`` uses a real training checkpoint instead: its parameters and its optimizer's moments as the
run left them (``last.ckpt`` of a finished run), prints the share of each moment tensor's entries that are
denormal, and times the same optimizer step with and without flushing.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def step_ms(rows: int, dim: int, fused: bool, moment: float, flush: bool, steps: int, repeats: int) -> float:
    torch.set_flush_denormal(flush)
    weight = torch.nn.Parameter(torch.randn(rows, dim))
    optimizer = torch.optim.AdamW([weight], lr=1e-3, weight_decay=0.0, fused=fused)
    weight.grad = torch.zeros_like(weight)
    weight.grad[: rows // 100] = torch.randn(rows // 100, dim)  # a batch uses ~1 % of the rows
    optimizer.step()
    samples = []
    for _ in range(repeats):
        state = optimizer.state[weight]
        state["exp_avg"].fill_(moment)
        state["exp_avg_sq"].fill_(1e-6)
        start = time.perf_counter()
        for _ in range(steps):
            optimizer.step()
        samples.append((time.perf_counter() - start) / steps * 1000)
    torch.set_flush_denormal(False)
    return statistics.median(samples)


def denormal_share(tensor: torch.Tensor) -> float:
    small = tensor.abs()
    return float(((small > 0) & (small < torch.finfo(torch.float32).tiny)).float().mean())


def from_checkpoint(path: str, steps: int, repeats: int) -> None:
    """Time the optimizer step of a saved run, with the moments it saved, with and without flushing."""
    from seqtasks.checkpoints import load_task

    task = load_task(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    params = list(task.parameters())
    saved = checkpoint["optimizer_states"][0]
    group = {k: v for k, v in saved["param_groups"][0].items() if k in ("lr", "betas", "eps", "weight_decay")}
    print(f"{path}: {sum(p.numel() for p in params):,} parameters, {torch.get_num_threads()} torch threads")
    shares = [denormal_share(state["exp_avg"]) for state in saved["state"].values() if "exp_avg" in state]
    biggest = max(range(len(params)), key=lambda i: params[i].numel())
    print(
        f"denormal entries of Adam's first moment: largest tensor ({tuple(params[biggest].shape)}) "
        f"{100 * shares[biggest]:.1f} %, all tensors {100 * sum(shares) / len(shares):.1f} % on average"
    )
    print("\n| AdamW | no flush (ms/step) | flush denormals (ms/step) |\n|---|---:|---:|")
    for fused in (True, False):
        times = []
        for flush in (False, True):
            torch.set_flush_denormal(flush)
            samples = []
            for _ in range(repeats):
                optimizer = torch.optim.AdamW(params, **group, fused=fused)
                optimizer.load_state_dict(saved)  # the saved moments, afresh for every timing
                for p in params:
                    p.grad = torch.zeros_like(p)
                start = time.perf_counter()
                for _ in range(steps):
                    optimizer.step()
                samples.append((time.perf_counter() - start) / steps * 1000)
            times.append(statistics.median(samples))
        torch.set_flush_denormal(False)
        print(f"| {'fused' if fused else 'foreach'} | {times[0]:.1f} | {times[1]:.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=50_533, help="embedding rows (vocabulary size)")
    parser.add_argument("--dim", type=int, default=100, help="embedding width")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per timing")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--checkpoint", help="a training checkpoint: its parameters and optimizer moments")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.checkpoint:
        from_checkpoint(args.checkpoint, args.steps, args.repeats)
        return
    print(
        f"AdamW step over a {args.rows:,} x {args.dim} embedding, {torch.get_num_threads()} torch threads, ms"
    )
    print("\n| AdamW | first moment | no flush | flush denormals |")
    print("|---|---|---:|---:|")
    for fused in (True, False):
        for name, moment in (("normal (1e-3)", 1e-3), ("denormal (1e-39)", 1e-39)):
            times = [
                step_ms(args.rows, args.dim, fused, moment, f, args.steps, args.repeats)
                for f in (False, True)
            ]
            kind = "fused" if fused else "foreach"
            print(f"| {kind} | {name} | {times[0]:.1f} | {times[1]:.1f} |")


if __name__ == "__main__":
    main()
