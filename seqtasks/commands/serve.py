"""Serve checkpoints over HTTP: a JSON endpoint per model (tag / classify / translate / generate) and a page.

seqtasks serve --ckpt runs/ner/best.ckpt --ckpt runs/mt/best.ckpt --name ner --name mt --port 8000
Open http://127.0.0.1:8000/ for the page; the API is POST /api/NAME/KIND (GET /api/models lists them).
FastAPI + uvicorn: several models of different tasks share one process and one page, with no extra worker
processes (LitServe's API is one model per server). Concurrent requests to a model are batched.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ckpt", action="append", required=True, help="a checkpoint of any task (repeat for several models)"
    )
    parser.add_argument(
        "--name", action="append", default=None, help="a name per --ckpt, in order (default: the file's stem)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (0: any free port)")
    parser.add_argument("--max-batch", type=int, default=32, help="texts per batched predictor call at most")
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="how long a request waits for others to batch with; 0: none — requests arriving while a batch "
        "runs form the next one (a lone request is answered at once)",
    )
    parser.add_argument("--max-requests", type=int, default=None, help="stop after answering N API requests")
    parser.add_argument("--idle-exit", type=float, default=None, help="stop after SECONDS without a request")
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=1,
        help="torch intra-op threads (1: a one-sentence request runs fastest, beside the event loop)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="uvicorn's log level",
    )


def run(options: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    names = options.name or []
    if len(names) > len(options.ckpt):
        parser.error(f"{len(names)} --name for {len(options.ckpt)} --ckpt")
    if options.max_batch < 1 or options.max_wait_ms < 0:
        parser.error("--max-batch must be at least 1 and --max-wait-ms at least 0")
    if options.max_requests is not None and options.max_requests < 1:
        parser.error("--max-requests must be at least 1")
    if options.idle_exit is not None and options.idle_exit <= 0:
        parser.error("--idle-exit must be positive")
    if options.torch_threads < 1:
        parser.error("--torch-threads must be at least 1")
    if not 0 <= options.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {options.port}")
    import os

    import torch

    from seqtasks.checkpoints import CheckpointError
    from seqtasks.serving.app import run_server
    from seqtasks.serving.models import check_names, load_model

    names = names + [os.path.splitext(os.path.basename(p))[0] for p in options.ckpt[len(names) :]]
    try:
        check_names(names)
    except ValueError as error:
        raise SystemExit(f"seqtasks serve: {error}") from None
    # on a small CPU, several intra-op threads fight the event loop and each other for a tiny batch:
    # a 4-token tag request took ~130 ms with 2 threads on a busy 2-core machine, ~2 ms with 1
    torch.set_num_threads(options.torch_threads)
    models = []
    for path, name in zip(options.ckpt, names, strict=True):
        try:
            models.append(load_model(path, name))
        except CheckpointError as error:  # names the file
            raise SystemExit(f"seqtasks serve: {error}") from None
        except (TypeError, ValueError, KeyError) as error:
            raise SystemExit(f"seqtasks serve: --ckpt {path}: {error}") from None
    run_server(
        models,
        host=options.host,
        port=options.port,
        max_batch=options.max_batch,
        max_wait_ms=options.max_wait_ms,
        max_requests=options.max_requests,
        idle_exit=options.idle_exit,
        log_level=options.log_level,
    )
