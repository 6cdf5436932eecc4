"""Export a classifier's network, or a tagger's emission network, to ONNX (``seqtasks export``).

    from seqtasks.inference.export import export_onnx

    export_onnx("runs/.../best.ckpt", "classifier.onnx")

What the graph computes (batch and time axes dynamic; every id tensor is int64):

* classifier: ``tokens (B, T)``, ``lengths (B,)`` → ``logits (B, num_labels)``; the softmax of the logits
  is what ``seqtasks classify`` reports.
* tagger: ``words (B, T)``, ``chars (B, T, L)``, ``casing (B, T)``, ``lengths (B,)`` → ``scores (B, T,
  num_tags)``, the emission scores. The CRF's Viterbi decoding (and its marginals) stays in Python: run
  :meth:`seqtasks.nn.crf.CRF.decode` on the scores (a softmax tagger takes the argmax). Its transitions are in
  the metadata (``seqtasks.crf_transitions``) for a decoder in another language.

Inputs are encoded with the checkpoint's own codec (``TextCodec`` for the classifier, ``TaggingCodec``
for the tagger); what they need travels in the ONNX file's ``metadata_props`` as JSON strings:
``seqtasks.task`` (the task's class path), ``seqtasks.labels``, ``seqtasks.inputs`` and ``seqtasks.artefacts``
(the checkpoint's codec state: vocabularies, tokenizer settings), so the file stands on its own. Read
them with ``onnx.load(path).metadata_props`` or ``onnxruntime``'s ``get_modelmeta().custom_metadata_map``.

The recurrent encoders export through their padded path (``variable_length="padded"``: the backward
direction reads each row reversed within its own length), which gives the same outputs as packing and
traces to plain ONNX ops; the TorchScript-based exporter (``dynamo=False``) is used, which handles the
RNNs on torch 2.13.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import torch
from torch import Tensor, nn

from seqtasks.checkpoints import CheckpointError, load_trained, task_kind
from seqtasks.networks.classifier import ClassifierNetwork
from seqtasks.networks.tagger import TaggerNetwork
from seqtasks.nn.modes import eval_mode

OPSET = 17


class _Emissions(nn.Module):
    """The tagger network's forward without the CRF (what the graph holds)."""

    def __init__(self, network: TaggerNetwork) -> None:
        super().__init__()
        self.network = network

    def forward(self, words: Tensor, chars: Tensor, casing: Tensor, lengths: Tensor) -> Tensor:
        return self.network(words, chars, casing, lengths)


def _padded_encoders(network: nn.Module) -> list[tuple[nn.Module, Any]]:
    """Switch every encoder with a ``variable_length`` choice to the padded path; the old settings."""
    changed = []
    for module in network.modules():
        if hasattr(module, "variable_length") and module.variable_length != "padded":
            changed.append((module, module.variable_length))
            module.variable_length = "padded"
    return changed


def example_inputs(task: Any) -> tuple[tuple[Tensor, ...], list[str], dict[str, dict[int, str]], list[str]]:
    """A tiny batch for tracing, the input names, their dynamic axes and the output names."""
    network = task.network
    if isinstance(network, ClassifierNetwork):
        tokens = torch.tensor([[2, 3, 4], [5, 6, network.pad_index]])
        lengths = torch.tensor([3, 2])
        axes = {"tokens": {0: "batch", 1: "time"}, "lengths": {0: "batch"}, "logits": {0: "batch"}}
        return (tokens, lengths), ["tokens", "lengths"], axes, ["logits"]
    if isinstance(network, TaggerNetwork):
        words = torch.tensor([[2, 3, 4], [5, 6, network.pad_index]])
        chars = torch.tensor([[[2, 3, 0], [4, 0, 0], [5, 6, 7]], [[2, 0, 0], [3, 4, 0], [0, 0, 0]]])
        casing = torch.tensor([[1, 2, 1], [2, 1, 0]])
        lengths = torch.tensor([3, 2])
        axes = {
            "words": {0: "batch", 1: "time"},
            "chars": {0: "batch", 1: "time", 2: "characters"},
            "casing": {0: "batch", 1: "time"},
            "lengths": {0: "batch"},
            "scores": {0: "batch", 1: "time"},
        }
        return (words, chars, casing, lengths), ["words", "chars", "casing", "lengths"], axes, ["scores"]
    raise CheckpointError(
        f"{task_kind(task)} cannot be exported: export takes a classifier or a tagger checkpoint"
    )


def metadata(task: Any, input_names: list[str], output_names: list[str]) -> dict[str, str]:
    """The ``metadata_props`` of the exported file (JSON strings)."""
    props = {
        "seqtasks.task": f"{type(task).__module__}.{type(task).__qualname__}",
        "seqtasks.labels": json.dumps(list(getattr(task, "labels", None) or task.network.labels)),
        "seqtasks.inputs": json.dumps(input_names),
        "seqtasks.outputs": json.dumps(output_names),
        "seqtasks.artefacts": json.dumps(task.artefacts, ensure_ascii=False),
    }
    crf = getattr(task.network, "crf", None)
    if crf is not None:
        props["seqtasks.crf_transitions"] = json.dumps(
            {name: tensor.detach().cpu().tolist() for name, tensor in crf.state_dict().items()}
        )
    return props


def export_onnx(checkpoint: str | os.PathLike | Any, path: str | os.PathLike) -> str:
    """Write the ONNX graph of a classifier or tagger (a checkpoint path or a loaded task) to ``path``.

    Returns ``path``. Raises :class:`~seqtasks.checkpoints.CheckpointError` for another task's checkpoint.
    """
    import onnx

    task = load_trained(checkpoint, "cpu") if isinstance(checkpoint, str | os.PathLike) else checkpoint
    inputs, input_names, axes, output_names = example_inputs(task)
    network = task.network
    module = _Emissions(network) if isinstance(network, TaggerNetwork) else network
    changed = _padded_encoders(network)
    try:
        with eval_mode(network), torch.no_grad(), warnings.catch_warnings():
            # the tracer warns about Python branches on shapes; none changes the exported computation
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            # h0 is built from the input's batch size inside the graph, so other batch sizes run (tested)
            warnings.filterwarnings(
                "ignore", message="Exporting a model to ONNX with a batch_size other than 1"
            )
            torch.onnx.export(
                module,
                inputs,
                str(path),
                input_names=input_names,
                output_names=output_names,
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        for encoder, setting in changed:
            encoder.variable_length = setting
    model = onnx.load(str(path))
    for key, value in metadata(task, input_names, output_names).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return str(path)


def onnx_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The ``seqtasks.*`` metadata of an exported file, JSON-decoded (``task`` stays a string)."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props if p.key.startswith("seqtasks.")}
    return {
        key.removeprefix("seqtasks."): value if key == "seqtasks.task" else json.loads(value)
        for key, value in props.items()
    }
