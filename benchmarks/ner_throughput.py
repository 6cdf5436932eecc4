"""Training throughput of the NER recipe: the full Lightning pipeline against a plain PyTorch loop.

Run on an otherwise idle machine, with the data directory that holds ``conll2003``:

    export SEQTASKS_DATA_DIR=/path/to/data
    python benchmarks/ner_throughput.py                     # defaults: 60 batches, 5 warm-up, 3 repeats
    python benchmarks/ner_throughput.py --batches 8 --warmup 2 --repeats 1   # a quick smoke run
    python benchmarks/ner_throughput.py --recipe recipes/ner-conll2003-gru.yaml

The method is that of ``sentiment_throughput.py`` (whose timer and helpers it reuses): the recipe's model
and datamodule built by the ``seqtasks`` CLI; **pipeline** = ``Trainer.fit`` with the recipe's DataLoader,
task metrics and logging; **plain** = a fresh copy of the same initial network (``task.network``, a plain
:class:`~seqtasks.networks.tagger.TaggerNetwork`) with the recipe's optimizer (the task's ``optimizer``
callable) and gradient clipping, on the same batches pre-collated in a list: forward → loss (CRF negative
log-likelihood or softmax) → backward → clip → step. Both count real tokens
over the same timed batches; the per-batch losses are compared to show both trained the same way.

It also prints the CRF's share of a plain training step (the CRF's forward algorithm and its backward
pass, timed alone on the step's own emissions) and the process's peak resident memory.
"""

from __future__ import annotations

import copy
import itertools
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml
from sentiment_throughput import (
    Run,
    build_cli,
    loader_seconds,
    machine_line,
    parse_options,
    quiet,
    recipe_optimizer,
    run_pipeline,
    run_plain,
    sync,
)

from seqtasks.data.sources import DATA_DIR_ENV, resolve
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.training import recipe_chain

RECIPE = Path(__file__).resolve().parents[1] / "recipes" / "ner-conll2003.yaml"
TARGET_RATIO = 0.9


def tagging_loss(network: TaggerNetwork, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The network's training loss (CRF negative log-likelihood or softmax) of one batch."""
    scores = network(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
    return network.loss(scores, batch["tags"], network.mask(batch["lengths"], scores.size(1)))


def crf_share(template: TaggerNetwork, batches, device, warmup: int) -> tuple[float, float]:
    """Seconds of whole plain steps and of their CRF part (forward algorithm + backward), same batches."""
    model = copy.deepcopy(template).to(device)
    model.train()
    if model.crf is None:
        return float("nan"), float("nan")
    step_total = crf_total = 0.0
    for index, batch in enumerate(batches):
        sync(device)
        t0 = time.perf_counter()
        scores = model(batch["words"], batch["chars"], batch["casing"], batch["lengths"])
        mask = model.mask(batch["lengths"], scores.size(1))
        model.loss(scores, batch["tags"], mask).backward()
        sync(device)
        t1 = time.perf_counter()
        emissions = scores.detach().requires_grad_(True)
        model.crf(emissions, batch["tags"], mask).backward()
        sync(device)
        t2 = time.perf_counter()
        model.zero_grad(set_to_none=True)
        if index >= warmup:
            step_total += t1 - t0
            crf_total += t2 - t1
    return step_total, crf_total


def check_data(recipe: Path) -> None:
    data_dir = os.environ.get(DATA_DIR_ENV)
    if not data_dir or not os.path.isdir(data_dir):
        sys.exit(
            f"{DATA_DIR_ENV} is not set to a directory: point it at the data directory that holds conll2003."
        )
    config: dict = {}
    for path in recipe_chain(recipe):  # the dataset may be named by a recipe this one builds on
        config.update(yaml.safe_load(Path(path).read_text()) or {})
    dataset = config["data"]["init_args"]["dataset"]
    if resolve(dataset).kind != "local":
        sys.exit(f"{DATA_DIR_ENV}={data_dir!r} holds no local copy of {dataset!r} (looked for conll2003).")


def main(argv: list[str] | None = None) -> None:
    args = parse_options(__doc__, RECIPE, argv)
    check_data(args.recipe)
    quiet()

    with tempfile.TemporaryDirectory(prefix="ner-throughput-") as root_dir:
        cli = build_cli(args, root_dir)
        template = cli.model  # the Lightning task, for the pipeline; the plain loop trains its network
        datamodule = cli.datamodule
        device = cli.trainer.strategy.root_device
        clip = cli.config["trainer"]["gradient_clip_val"]
        if cli.config["trainer"].get("gradient_clip_algorithm") not in (None, "norm"):
            sys.exit("the plain loop clips by norm; this recipe clips otherwise")
        datamodule.setup("fit")
        if template.word_vectors:  # what the task's setup("fit") does, so that both paths start alike
            template.artefacts = datamodule.artefacts()  # (the pipeline's setup loads the same rows again)
            template.load_word_vectors(template.word_vectors)
        to_device = lambda batch: {k: v.to(device) for k, v in batch.items()}  # noqa: E731
        batches = [to_device(b) for b in itertools.islice(datamodule.train_dataloader(), args.batches)]
        if len(batches) < args.batches:
            sys.exit(f"the training loader has only {len(batches)} batches; lower --batches")

        network, optimizer = template.network, recipe_optimizer(template)
        plain = lambda: run_plain(network, batches, device, clip, args.warmup, tagging_loss, optimizer)  # noqa: E731
        plain()  # untimed: first calls at each shape
        runs: dict[str, list[Run]] = {"pipeline": [], "plain": []}
        loader: list[float] = []
        for repeat in range(args.repeats):
            order = ("pipeline", "plain") if repeat % 2 == 0 else ("plain", "pipeline")
            for path in order:
                if path == "pipeline":
                    runs[path].append(run_pipeline(cli, template, args.warmup))
                else:
                    runs[path].append(plain())
            loader.append(loader_seconds(datamodule, args.batches, args.warmup))
        step_seconds, crf_seconds = crf_share(network, batches, device, args.warmup)

    reference = runs["plain"][0]
    for path, path_runs in runs.items():
        for run in path_runs:
            if run.tokens != reference.tokens:
                sys.exit(f"the {path} run saw different batches: the timing would compare different work")
    loss_gap = max(
        abs(a - b)
        for run in runs["pipeline"] + runs["plain"]
        for a, b in zip(run.losses, reference.losses, strict=True)
    )
    rates = {path: statistics.median(r.rate for r in rs) for path, rs in runs.items()}
    seconds = {path: statistics.median(r.seconds for r in rs) for path, rs in runs.items()}
    ratio = rates["pipeline"] / rates["plain"]
    per_repeat = [p.rate / q.rate for p, q in zip(runs["pipeline"], runs["plain"], strict=True)]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    timed = args.batches - args.warmup
    print(
        "\n".join(
            [
                f"NER recipe ({args.recipe.name}), {timed} timed batches after {args.warmup} warm-up, "
                f"{reference.timed_tokens:,} tokens, median of {args.repeats} — {machine_line(device)}",
                "",
                "| path | tokens/s (median) | seconds (median) | pipeline/plain |",
                "|---|---:|---:|---:|",
                f"| Lightning `Trainer.fit` (recipe datamodule) | {rates['pipeline']:,.0f} "
                f"| {seconds['pipeline']:.2f} | {ratio:.3f} |",
                f"| plain PyTorch loop (pre-collated batches) | {rates['plain']:,.0f} "
                f"| {seconds['plain']:.2f} | 1.000 |",
                f"| its DataLoader alone (fetch + collate; inside pipeline) | — "
                f"| {statistics.median(loader):.2f} | — |",
            ]
        )
    )
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(
        f"\npipeline/plain {ratio:.3f} (target ≥ {TARGET_RATIO}: {verdict}; per repeat "
        f"{', '.join(f'{r:.3f}' for r in per_repeat)}); same {args.batches} batches in both paths, per-batch "
        f"losses differ by at most {loss_gap:.1e}."
    )
    if step_seconds == step_seconds:  # not NaN: the model has a CRF
        print(
            f"CRF share of a training step (forward algorithm + backward, same batches): "
            f"{100 * crf_seconds / step_seconds:.1f} % ({crf_seconds:.2f} s of {step_seconds:.2f} s)"
        )
    print(f"peak resident memory of this process: {peak_gib:.2f} GiB (target ≤ 1.5 GiB)")


if __name__ == "__main__":
    main()
