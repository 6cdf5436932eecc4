"""Inference speed from checkpoint to user: batched files, the server's warm latency, cold starts, ONNX.

Run on an otherwise idle machine, with the data directory that holds ``reviews/imdb``, ``conll2003`` and
``en_hi``, and any of the four checkpoints (a section or row whose checkpoint is not given is skipped):

    export SEQTASKS_DATA_DIR=/path/to/data
    python benchmarks/inference.py --classifier runs/sentiment-imdb/.../best.ckpt \\
        --tagger runs/ner-conll2003/.../best.ckpt --translator runs/mt-hvg/.../best.ckpt \\
        --translation-set hvg/test --composer runs/bach-events/.../best.ckpt
    python benchmarks/inference.py --classifier C --tagger T --sections server,cold
    python benchmarks/inference.py --quick --classifier tests/fixtures/legacy/classifier.ckpt \\
        --tagger tests/fixtures/legacy/tagger.ckpt --translator tests/fixtures/legacy/translator.ckpt \\
        --composer tests/fixtures/legacy/events.ckpt        # a smoke run (tiny models: numbers mean nothing)

Sections (``--sections``, comma-separated; all by default), each a Markdown table with the issue's target
where it gives one:

* **throughput**: batched inference over a test set, through the predictors of :mod:`seqtasks.inference`
  in this process (``Classifier.classify``, ``Tagger.tag_tokens`` and ``Tagger.tag``,
  ``Translator.translate`` greedy and beam 5, ``Composer.generate``; one untimed warm-up call first) and
  through the real command on a file, timed as a fresh subprocess (``seqtasks classify --input IN.jsonl
  --output OUT --format jsonl``, ``seqtasks tag ...``, ``seqtasks translate --input IN.txt``, ``seqtasks
  generate``), so the command's figure includes its start and the checkpoint's loading. Tokens: the
  classifier codec's ids per review (the 25k reviews of ``reviews/imdb/test.parquet``, ``--limit``); the
  CoNLL-2003 test tokens (``Tagger.tag`` and ``tag`` split the joined sentence again, like CoNLL, and count
  those tokens); the source subwords of the codec per sentence for translation (the output subwords are
  the translations encoded again by the target tokenizer); generated event tokens or piano-roll frames
  (``--steps``, with ``min_steps`` = ``steps`` so an event model never stops early). One timed pass each.
* **server**: ``seqtasks serve --port 0 --torch-threads T --idle-exit 60`` on the classifier, tagger and
  translator in a subprocess; after ``--warmup`` requests per endpoint, ``--requests`` sequential POSTs of
  one sentence each (first sentences of IMDB test reviews to ``classify``, CoNLL test sentences to
  ``tag``, the translation set's sentences to ``translate``, greedy) on one keep-alive connection
  (``http.client``): client-side p50 / p95 / max milliseconds. The server's micro-batcher waits up to its
  ``--max-wait-ms`` for other requests (``--server-wait-ms`` passes a value; default: the server's).
* **cold**: wall time of a fresh ``seqtasks COMMAND`` process on one input (``classify``, ``tag``,
  ``translate``, ``generate --steps 16``) and of ``seqtasks COMMAND --help``, median of ``--repeats``;
  ``python -c "import torch"`` is shown as the floor any command pays.
* **onnx**: ``seqtasks export --format onnx`` of the classifier and the tagger, then ONNX Runtime against
  the PyTorch network's forward (``torch.no_grad``, evaluation mode) on the same real inputs (the first
  IMDB test reviews / CoNLL test sentences, encoded by the checkpoint's codec) at batch 1 and batch 64:
  median milliseconds of ``--onnx-repeats`` calls after two warm-up calls, one thread each, and the
  largest absolute difference of the outputs (the tagger's over real tokens only, not padding).

Every process runs with ``--torch-threads`` threads (default 1: on a small shared CPU two threads are far
slower for these small recurrent networks; ``OMP_NUM_THREADS`` is set for the subprocesses and
``--torch-threads`` passed to commands that take it). Outputs and exported files go to a temporary folder,
deleted at the end. A row that fails prints its error under the table instead of stopping the run.
"""

from __future__ import annotations

import argparse
import http.client
import importlib
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import torch
from sentiment_throughput import machine_line, quiet

from seqtasks.serving.launch import served

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("throughput", "server", "cold", "onnx")
DATA_DIR_ENV = "SEQTASKS_DATA_DIR"
IMDB_TARGET = 50_000  # tokens/s, batched IMDB inference
LATENCY_TARGET_MS = 20.0  # warm p50 of a one-sentence tag / classify request
COLD_TARGET_S = 3.0  # a command's cold start
HELP_TARGET_S = 1.5  # `seqtasks COMMAND --help` (the project's rule for command modules)
QUICK = {"limit": 500, "sentences": 300, "steps": 256, "requests": 50, "warmup": 5, "repeats": 1}
QUICK_ONNX_REPEATS = 5


# ---------------------------------------------------------------------------------------------- options


def parse_options(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    for name, what in (
        ("classifier", "a SequenceClassifier checkpoint (the IMDB model)"),
        ("tagger", "a TokenTagger checkpoint (CoNLL-2003)"),
        ("translator", "a Seq2SeqTranslator checkpoint (en→hi)"),
        ("composer", "a PianoRollComposer or EventComposer checkpoint"),
    ):
        parser.add_argument(f"--{name}", type=Path, help=f"{what}; its rows are skipped when not given")
    parser.add_argument(
        "--translation-set",
        default="hvg/test",
        help="the en→hi test set matching the translator: <folder under en_hi>/<parquet stem>, e.g. "
        "hvg/test or tatoeba/test",
    )
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help="which sections to run, comma-separated"
    )
    parser.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK} unless given")
    parser.add_argument("--limit", type=int, help="IMDB test reviews (default: all 25,000)")
    parser.add_argument("--sentences", type=int, help="CoNLL / translation test sentences (default: all)")
    parser.add_argument("--steps", type=int, help="generated events or frames per piece (default 1024)")
    parser.add_argument("--requests", type=int, help="timed requests per server endpoint (default 200)")
    parser.add_argument("--warmup", type=int, help="untimed requests per server endpoint first (default 20)")
    parser.add_argument("--repeats", type=int, help="fresh processes per cold-start row (default 3)")
    parser.add_argument("--onnx-repeats", type=int, help="timed calls per ONNX/PyTorch row (default 20)")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="texts per forward pass (API and commands)"
    )
    parser.add_argument("--beam", type=int, default=5, help="the beam row of the translator")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch threads in every process")
    parser.add_argument("--server-wait-ms", type=float, help="the server's --max-wait-ms (default: its own)")
    args = parser.parse_args(argv)
    defaults = {"limit": None, "sentences": None, "steps": 1024, "requests": 200, "warmup": 20, "repeats": 3}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, QUICK[key] if args.quick else value)
    if args.onnx_repeats is None:
        args.onnx_repeats = QUICK_ONNX_REPEATS if args.quick else 20
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    for key in ("limit", "sentences", "steps", "requests", "repeats", "onnx_repeats", "batch_size", "beam"):
        value = getattr(args, key)
        if value is not None and value < 1:
            parser.error(f"--{key.replace('_', '-')} must be at least 1")
    if args.torch_threads < 1 or args.warmup < 0:
        parser.error("--torch-threads must be at least 1 and --warmup at least 0")
    for name in ("classifier", "tagger", "translator", "composer"):
        path = getattr(args, name)
        if path is not None and not path.is_file():
            parser.error(f"--{name} {path}: no such file")
    return args


# ---------------------------------------------------------------------------------------------- helpers


def data_dir() -> Path:
    value = os.environ.get(DATA_DIR_ENV)
    if not value or not os.path.isdir(value):
        sys.exit(
            f"{DATA_DIR_ENV} is not set to a directory: point it at the folder holding reviews/, conll2003/"
        )
    return Path(value)


def read_column(path: Path, column: str, limit: int | None) -> list[Any]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing (see the data folder's README)")
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return values[:limit] if limit else values


def first_sentence(text: str, limit: int = 300) -> str:
    """The first sentence of a review (up to its first '. ', '! ' or '? '), at most ``limit`` characters."""
    text = text.replace("<br />", " ").strip()
    match = re.search(r"[.!?](\s|$)", text)
    return (text[: match.end()] if match else text)[:limit].strip() or text[:limit]


def seqtasks_command() -> list[str]:
    """The installed ``seqtasks`` script beside this interpreter, else ``python -m seqtasks.cli``."""
    script = Path(sys.executable).parent / "seqtasks"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "seqtasks.cli"]


def takes_threads(command: str) -> bool:
    """Whether ``seqtasks COMMAND`` has a ``--torch-threads`` option (its module imports stdlib only)."""
    from seqtasks.cli import COMMANDS

    module = importlib.import_module(COMMANDS[command][0])
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return "--torch-threads" in parser._option_string_actions


class Runner:
    """Runs ``seqtasks`` subprocesses in a temporary folder, with the benchmark's thread settings."""

    def __init__(self, threads: int, folder: str) -> None:
        self.threads = threads
        self.folder = folder
        self.env = {
            **os.environ,
            "OMP_NUM_THREADS": str(threads),
            "MKL_NUM_THREADS": str(threads),
            "PYTHONUNBUFFERED": "1",
            "PYTHONWARNINGS": "ignore",
        }

    def argv(self, command: str, *args: str, threads: bool = True) -> list[str]:
        extra = ["--torch-threads", str(self.threads)] if threads and takes_threads(command) else []
        return [*seqtasks_command(), command, *extra, *args]

    def time(self, argv: Sequence[str], stdin: str | None = None) -> float:
        """Wall seconds of one process, which must exit 0 (else RuntimeError with its stderr's end)."""
        start = time.perf_counter()
        done = subprocess.run(
            argv, cwd=self.folder, env=self.env, input=stdin, capture_output=True, text=True, timeout=3600
        )
        seconds = time.perf_counter() - start
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"`{' '.join(argv[1:4])} ...` exited {done.returncode}: {' | '.join(tail)}")
        return seconds

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def verdict(met: bool) -> str:
    return "met" if met else "**NOT met**"


def table(header: Sequence[str], rows: list[Sequence[str]], right_from: int = 1) -> str:
    align = ["---" if i < right_from else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def print_section(
    title: str, header: Sequence[str], rows: list, notes: list[str], right_from: int = 2
) -> None:
    print(f"\n### {title}\n")
    if rows:
        print(table(header, rows, right_from))
    else:
        print("(no rows: no checkpoint given for this section)")
    if notes:
        print()
    for note in notes:
        print(f"- {note}")
    sys.stdout.flush()


def write_inputs(path: str, texts: Sequence[str]) -> None:
    """``texts`` as a command's input file: JSONL ``{"id", "text"}`` for ``.jsonl``, else one per line."""
    with open(path, "w", encoding="utf-8") as handle:
        for number, text in enumerate(texts, start=1):
            if path.endswith(".jsonl"):
                handle.write(json.dumps({"id": number, "text": text}, ensure_ascii=False) + "\n")
            else:
                handle.write(text + "\n")


def count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as handle:
        return sum(1 for _ in handle)


# ------------------------------------------------------------------------------------------- throughput


def rate_row(
    task: str,
    path: str,
    items: int,
    unit: str,
    amount: int,
    seconds: float,
    target: str = "—",
    ok: str = "—",
    more: str = "",
) -> list[str]:
    """A throughput row: ``amount`` units of work over ``items`` inputs in ``seconds``."""
    rate = f"{amount / seconds:,.0f}{more}"
    return [task, path, f"{items:,}", f"{amount:,} {unit}", f"{seconds:.2f}", rate, target, ok]


def command_seconds(
    runner: Runner, command: str, options: Sequence[str], inputs: Sequence[str], suffix: str
) -> tuple[float, float]:
    """Wall seconds of ``seqtasks COMMAND OPTIONS --input FILE --output OUT`` on ``inputs``, and of the same
    command on the first input alone (its start: interpreter, imports, checkpoint). Checks one output line
    per input."""
    output = runner.path(f"{command}-output")
    seconds = {}
    for name, texts in (("one", inputs[:1]), ("all", inputs)):
        source = runner.path(f"{command}-{name}{suffix}")
        write_inputs(source, texts)
        seconds[name] = runner.time(runner.argv(command, *options, "--input", source, "--output", output))
        if count_lines(output) != len(texts):
            raise RuntimeError(f"{command} wrote {count_lines(output)} lines for {len(texts)} inputs")
    return seconds["all"], seconds["one"]


def net_of_start(amount: int, seconds: float, start: float) -> str:
    net = seconds - start
    if net <= 0:
        return f" (its start alone, on one input, took {start:.1f} s)"
    return f" ({amount / net:,.0f} net of its {start:.1f} s start)"


def throughput(args: argparse.Namespace, runner: Runner, data: Path) -> None:
    rows: list[list[str]] = []
    notes: list[str] = []
    batch = ["--batch-size", str(args.batch_size), "--quiet"]

    def attempt(what: str, function: Callable[[], None]) -> None:
        try:
            function()
        except Exception as error:  # a failed row is reported, the others still run
            notes.append(f"{what} failed: {type(error).__name__}: {error}")

    def classifier_rows() -> None:
        from seqtasks.inference.classification import Classifier

        task, target = "classify (IMDB test)", f"≥ {IMDB_TARGET:,} tokens/s"
        reviews = read_column(data / "reviews/imdb/test.parquet", "text", args.limit)
        classifier = Classifier.from_checkpoint(args.classifier, batch_size=args.batch_size)
        tokens = sum(len(classifier.codec(text)) for text in reviews)
        classifier.classify(reviews[: args.batch_size])  # warm-up
        seconds, _ = timed(lambda: classifier.classify(reviews))
        ok = verdict(tokens / seconds >= IMDB_TARGET)
        rows.append(
            rate_row(task, "`Classifier.classify`", len(reviews), "tokens", tokens, seconds, target, ok)
        )
        options = ["--ckpt", str(args.classifier.resolve()), "--format", "jsonl", *batch]
        seconds, start = command_seconds(runner, "classify", options, reviews, ".jsonl")
        ok = verdict(tokens / seconds >= IMDB_TARGET)
        more = net_of_start(tokens, seconds, start)
        path = "`seqtasks classify --input F.jsonl --format jsonl` (process)"
        rows.append(rate_row(task, path, len(reviews), "tokens", tokens, seconds, target, ok, more))

    def tagger_rows() -> None:
        from seqtasks.data.tagging import tokenize_spans
        from seqtasks.inference.tagging import Tagger

        task = "tag (CoNLL-2003 test)"
        sentences = read_column(data / "conll2003/test.parquet", "tokens", args.sentences)
        tagger = Tagger.from_checkpoint(args.tagger, batch_size=args.batch_size)
        tokens = sum(len(s) for s in sentences)
        tagger.tag_tokens(sentences[: args.batch_size])  # warm-up
        seconds, _ = timed(lambda: tagger.tag_tokens(sentences))
        rows.append(
            rate_row(task, "`Tagger.tag_tokens` (Viterbi only)", len(sentences), "tokens", tokens, seconds)
        )
        texts = [" ".join(s) for s in sentences]
        split = sum(len(tokenize_spans(text)) for text in texts)
        seconds, _ = timed(lambda: tagger.tag(texts))
        path = "`Tagger.tag` (split, offsets, marginals)"
        rows.append(rate_row(task, path, len(texts), "tokens", split, seconds))
        options = ["--ckpt", str(args.tagger.resolve()), "--format", "jsonl", *batch]
        seconds, start = command_seconds(runner, "tag", options, texts, ".jsonl")
        path = "`seqtasks tag --input F.jsonl --format jsonl` (process)"
        rows.append(
            rate_row(
                task, path, len(texts), "tokens", split, seconds, more=net_of_start(split, seconds, start)
            )
        )

    def translator_rows() -> None:
        from seqtasks.inference.translation import Translator

        folder, _, stem = args.translation_set.rpartition("/")
        texts = read_column(data / "en_hi" / folder / f"{stem}.parquet", "en", args.sentences)
        texts = [" ".join(text.split()) for text in texts]  # one line each in the command's input file
        translator = Translator.from_checkpoint(args.translator)
        codec = translator.codec
        subwords = sum(len(codec.encode_source(text)) for text in texts)
        for beam in dict.fromkeys((1, args.beam)):
            task = f"translate ({args.translation_set}, {'greedy' if beam == 1 else f'beam {beam}'})"
            translator.translate(texts[: args.batch_size], beam=beam, batch_size=args.batch_size)  # warm-up
            seconds, outputs = timed(
                lambda beam=beam: translator.translate(texts, beam=beam, batch_size=args.batch_size)
            )
            produced = sum(len(codec.target_tokenizer.encode(o).ids) for o in outputs if o)
            more = f" ({len(texts) / seconds:,.1f} sentences/s; {produced / seconds:,.0f} output subwords/s)"
            path = "`Translator.translate`"
            rows.append(rate_row(task, path, len(texts), "source subwords", subwords, seconds, more=more))
            options = ["--ckpt", str(args.translator.resolve()), "--beam", str(beam), *batch]
            seconds, start = command_seconds(runner, "translate", options, texts, ".txt")
            net = seconds - start
            more = f" ({len(texts) / seconds:,.1f} sentences/s" + (
                f"; net of its {start:.1f} s start: {len(texts) / net:,.1f} sentences/s)" if net > 0 else ")"
            )
            path = "`seqtasks translate --input F.txt` (process)"
            rows.append(rate_row(task, path, len(texts), "source subwords", subwords, seconds, more=more))

    def composer_rows() -> None:
        from seqtasks.inference.music import Composer
        from seqtasks.music.pianoroll import PianoRollCodec

        composer = Composer.from_checkpoint(args.composer)
        unit = "frames" if isinstance(composer.codec, PianoRollCodec) else "events"
        steps = args.steps
        composer.generate(steps=16, min_steps=16, seed=1)  # warm-up
        seconds, piece = timed(lambda: composer.generate(steps=steps, min_steps=steps, seed=0))
        rows.append(rate_row("generate", "`Composer.generate`", 1, unit, steps, seconds))
        run = {}
        for name, count in (("one", 1), ("all", steps)):
            options = ["--steps", str(count), "--min-steps", str(count), "--out", runner.path("piece.mid")]
            run[name] = runner.time(runner.argv("generate", "--ckpt", str(args.composer.resolve()), *options))
        path = "`seqtasks generate` (process; writes MIDI + PNG)"
        more = net_of_start(steps, run["all"], run["one"])
        rows.append(rate_row("generate", path, 1, unit, steps, run["all"], more=more))
        notes.append(f"the piece has {len(piece)} notes; {steps} {unit} generated (`min_steps` = `steps`)")

    for name, rows_of in (
        ("classifier", classifier_rows),
        ("tagger", tagger_rows),
        ("translator", translator_rows),
        ("composer", composer_rows),
    ):
        if getattr(args, name):
            attempt(name, rows_of)
        else:
            notes.append(f"{name} rows skipped: no --{name}")
    notes.insert(
        0,
        f"batch size {args.batch_size}; one timed pass per row (API rows after a warm-up call); a process "
        "row's time includes the process's start and the checkpoint's loading; its start (the same command "
        "on the first input alone, or `--steps 1`) is subtracted in the figure in brackets",
    )
    print_section(
        "Batched inference throughput",
        ["task", "path", "inputs", "work", "seconds", "per second", "target", "verdict"],
        rows,
        notes,
    )


# ----------------------------------------------------------------------------------------------- server


def server_command(runner: Runner, models: dict[str, Path], args: argparse.Namespace) -> list[str]:
    argv = runner.argv("serve", "--port", "0", "--idle-exit", "60")
    for name, path in models.items():
        argv += ["--ckpt", str(path.resolve()), "--name", name]
    if args.server_wait_ms is not None:
        argv += ["--max-wait-ms", str(args.server_wait_ms)]
    return argv


def post(connection: http.client.HTTPConnection, path: str, body: dict) -> tuple[float, int, bytes]:
    payload = json.dumps(body).encode()
    start = time.perf_counter()
    connection.request("POST", path, payload, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    return time.perf_counter() - start, response.status, data


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def server(args: argparse.Namespace, runner: Runner, data: Path) -> None:
    models = {
        name: path
        for name, path in (
            ("classifier", args.classifier),
            ("tagger", args.tagger),
            ("translator", args.translator),
        )
        if path is not None
    }
    notes = [
        f"{args.requests} timed sequential requests per endpoint after {args.warmup} untimed, one keep-alive "
        "connection (`http.client`), client-side wall time per request (send → whole body read); server "
        f"`--torch-threads {args.torch_threads}`, `--max-wait-ms` "
        f"{'its default' if args.server_wait_ms is None else args.server_wait_ms}"
    ]
    rows: list[list[str]] = []
    if not models:
        print_section("Warm single-request latency of `seqtasks serve`", [], [], ["skipped: no checkpoint"])
        return
    needed = args.requests + args.warmup
    inputs: dict[str, tuple[str, dict[str, Any], list[str]]] = {}
    try:
        if "classifier" in models:
            reviews = read_column(data / "reviews/imdb/test.parquet", "text", needed)
            inputs["classifier"] = ("classify", {}, [first_sentence(r) for r in reviews])
        if "tagger" in models:
            sentences = read_column(data / "conll2003/test.parquet", "tokens", needed)
            inputs["tagger"] = ("tag", {}, [" ".join(s) for s in sentences])
        if "translator" in models:
            folder, _, stem = args.translation_set.rpartition("/")
            texts = read_column(data / "en_hi" / folder / f"{stem}.parquet", "en", needed)
            inputs["translator"] = ("translate", {"beam": 1}, texts)
    except FileNotFoundError as error:
        print_section("Warm single-request latency of `seqtasks serve`", [], [], [f"failed: {error}"])
        return
    start = time.perf_counter()
    try:
        with served(server_command(runner, models, args), str(runner.folder), runner.env, 120) as server:
            ready = time.perf_counter() - start
            notes.append(
                f"the server answered its first request {ready:.1f} s after its start ({len(models)} models)"
            )
            connection = http.client.HTTPConnection(*server.address, timeout=60)
            for name, (kind, extra, texts) in inputs.items():
                path = f"/api/{name}/{kind}"
                times, failures = [], 0
                for number in range(needed):
                    text = texts[number % len(texts)]
                    seconds, status, body = post(connection, path, {"text": text, **extra})
                    if status != 200:
                        failures += 1
                        if failures == 1:
                            notes.append(f"{path}: HTTP {status} for {text[:60]!r}: {body[:200]!r}")
                    if number >= args.warmup:
                        times.append(seconds * 1000)
                words = statistics.mean(len(t.split()) for t in texts)
                p50 = statistics.median(times)
                if kind in ("tag", "classify"):
                    target, ok = (
                        f"p50 < {LATENCY_TARGET_MS:.0f} ms",
                        verdict(p50 < LATENCY_TARGET_MS and not failures),
                    )
                else:
                    target, ok = "—", "—"
                rows.append(
                    [
                        f"`POST {path}`",
                        f"{len(times)}",
                        f"{words:.1f}",
                        f"{p50:.1f}",
                        f"{percentile(times, 0.95):.1f}",
                        f"{max(times):.1f}",
                        f"{failures}",
                        target,
                        ok,
                    ]
                )
            connection.close()
    except Exception as error:
        notes.append(f"failed: {type(error).__name__}: {error}")
    print_section(
        "Warm single-request latency of `seqtasks serve`",
        [
            "endpoint",
            "requests",
            "words / request",
            "p50 ms",
            "p95 ms",
            "max ms",
            "errors",
            "target",
            "verdict",
        ],
        rows,
        notes,
        right_from=1,
    )


# ------------------------------------------------------------------------------------------- cold start


def cold(args: argparse.Namespace, runner: Runner) -> None:
    rows: list[list[str]] = []
    notes = [
        f"wall time of a fresh process (start → exit), median of {args.repeats} (min–max shown); "
        f"`OMP_NUM_THREADS={args.torch_threads}`"
    ]

    def measure(label: str, argv: list[str], target: float | None) -> None:
        try:
            times = [runner.time(argv) for _ in range(args.repeats)]
        except Exception as error:
            notes.append(f"{label} failed: {type(error).__name__}: {error}")
            return
        median = statistics.median(times)
        spread = f"{min(times):.2f}–{max(times):.2f}"
        if target is None:
            rows.append([label, f"{median:.2f}", spread, "—", "—"])
        else:
            rows.append([label, f"{median:.2f}", spread, f"< {target:g} s", verdict(median < target)])

    measure('`python -c "import torch"` (floor)', [sys.executable, "-c", "import torch"], None)
    runs = {
        "classify": (args.classifier, ["a wonderful film, I loved it"]),
        "tag": (args.tagger, ["Peter Blackburn visited Paris with Merkel's party ."]),
        "translate": (args.translator, ["how are you?"]),
        "generate": (args.composer, ["--steps", "16", "--out", runner.path("cold.mid")]),
    }
    for command, (checkpoint, extra) in runs.items():
        if checkpoint is None:
            notes.append(f"`seqtasks {command}` on one input skipped: no --{ROLE[command]}")
            continue
        argv = runner.argv(command, "--ckpt", str(checkpoint.resolve()), *extra)
        shown = " ".join(
            "F.mid" if e.endswith(".mid") else e if e.startswith("-") or e.isdigit() else f'"{e}"'
            for e in extra
        )
        measure(f"`seqtasks {command} --ckpt C {shown}`", argv, COLD_TARGET_S)
    for command in ("classify", "tag", "translate", "generate", "serve", "export"):
        measure(f"`seqtasks {command} --help`", runner.argv(command, "--help", threads=False), HELP_TARGET_S)
    print_section(
        "Cold start of each command",
        ["command", "seconds (median)", "min–max", "target", "verdict"],
        rows,
        notes,
        right_from=1,
    )


ROLE = {"classify": "classifier", "tag": "tagger", "translate": "translator", "generate": "composer"}


# ------------------------------------------------------------------------------------------------- onnx


def onnx_inputs(task: Any, data: Path, count: int) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
    """The first ``count`` real test inputs encoded by the checkpoint's codec: the network's inputs by
    name, and (tagger) the lengths that mark real tokens."""
    from seqtasks.networks.classifier import ClassifierNetwork

    if isinstance(task.network, ClassifierNetwork):
        from seqtasks.inference.classification import Classifier

        classifier = Classifier.from_task(task)
        reviews = read_column(data / "reviews/imdb/test.parquet", "text", count)
        tokens, lengths = classifier.encode(reviews)
        return {"tokens": tokens, "lengths": lengths}, None
    from seqtasks.inference.tagging import Tagger

    tagger = Tagger.from_task(task)
    batch = tagger.encode(read_column(data / "conll2003/test.parquet", "tokens", count))
    inputs = {k: batch[k] for k in ("words", "chars", "casing", "lengths")}
    return inputs, batch["lengths"]


def median_ms(function: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    result = None
    for _ in range(2):
        result = function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def onnx(args: argparse.Namespace, runner: Runner, data: Path) -> None:
    rows: list[list[str]] = []
    notes = [
        f"median of {args.onnx_repeats} calls after 2 warm-up calls; PyTorch: `network(...)` under "
        f"`torch.no_grad()` in evaluation mode, {torch.get_num_threads()} thread(s); ONNX Runtime: "
        "CPUExecutionProvider, intra- and inter-op threads 1, sequential execution"
    ]
    try:
        import onnxruntime as ort
    except ImportError:
        print_section("ONNX Runtime vs PyTorch", [], [], ["skipped: onnxruntime is not installed"])
        return
    from seqtasks.checkpoints import load_task
    from seqtasks.nn.modes import eval_mode

    checkpoints = [(n, p) for n, p in (("classifier", args.classifier), ("tagger", args.tagger)) if p]
    if not checkpoints:
        notes.append("skipped: no --classifier or --tagger")
    for name, checkpoint in checkpoints:
        try:
            output = runner.path(f"{name}.onnx")
            argv = runner.argv(
                "export", "--ckpt", str(checkpoint.resolve()), "--format", "onnx", "--output", output
            )
            export_seconds = runner.time(argv)
            notes.append(
                f"`seqtasks export` of the {name}: {export_seconds:.1f} s, "
                f"{os.path.getsize(output) / 1e6:.2f} MB"
            )
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            session = ort.InferenceSession(output, options, providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            task = load_task(checkpoint, "cpu")
            network = task.network
            for batch_size in (1, 64):
                inputs, lengths = onnx_inputs(task, data, batch_size)
                feed = {key: inputs[key].numpy() for key in names}
                ordered = [inputs[key] for key in names]

                def forward(network=network, ordered=ordered):
                    with eval_mode(network), torch.no_grad():
                        return network(*ordered)

                torch_ms, expected = median_ms(forward, args.onnx_repeats)
                ort_ms, (got, *_) = median_ms(
                    lambda session=session, feed=feed: session.run(None, feed), args.onnx_repeats
                )
                difference = (torch.from_numpy(got) - expected).abs()
                if lengths is not None:  # tagger: real tokens only
                    mask = torch.arange(difference.size(1))[None, :] < lengths[:, None]
                    difference = difference[mask]
                tokens = int(inputs["lengths"].sum())
                rows.append(
                    [
                        f"{name} ({type(task).__name__})",
                        f"{batch_size}",
                        f"{tokens:,}",
                        f"{torch_ms:.2f}",
                        f"{ort_ms:.2f}",
                        f"{torch_ms / ort_ms:.2f}×",
                        f"{float(difference.max()):.1e}",
                    ]
                )
        except Exception as error:
            notes.append(f"{name} failed: {type(error).__name__}: {error}")
    print_section(
        "ONNX Runtime vs PyTorch (network forward: classifier logits / tagger emission scores)",
        ["model", "batch", "tokens", "PyTorch ms", "ONNX Runtime ms", "PyTorch / ORT", "max abs. difference"],
        rows,
        notes,
    )


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    args = parse_options(argv)
    torch.set_num_threads(args.torch_threads)
    quiet()
    data = data_dir() if set(args.sections) & {"throughput", "server", "onnx"} else Path()
    given = [n for n in ("classifier", "tagger", "translator", "composer") if getattr(args, n)]
    title = f"## Inference benchmark{' (--quick)' if args.quick else ''}"
    print(
        f"{title} — {machine_line(torch.device('cpu'))}\n\n"
        f"checkpoints: {', '.join(f'{n} `{getattr(args, n)}`' for n in given) or 'none'}; "
        f"translation set en_hi/{args.translation_set}; {args.torch_threads} torch thread(s) in every process"
    )
    sys.stdout.flush()
    with tempfile.TemporaryDirectory(prefix="seqtasks-inference-bench-") as folder:
        runner = Runner(args.torch_threads, folder)
        if "throughput" in args.sections:
            throughput(args, runner, data)
        if "server" in args.sections:
            server(args, runner, data)
        if "cold" in args.sections:
            cold(args, runner)
        if "onnx" in args.sections:
            onnx(args, runner, data)


if __name__ == "__main__":
    main()
