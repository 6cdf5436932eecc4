"""Deep (stacked) RNNs: what 1–4 layers of a tanh RNN, GRU and LSTM buy on CoNLL-2003 NER, and what they cost.

Each model is the project's tagger network with a unidirectional encoder of ``L`` stacked layers (layer
``l`` reads layer ``l−1``'s outputs), trained by :func:`seqtasks.analysis.plain.train_tagger`. Per model:
test entity F1 and token accuracy, training seconds, parameters, and the gradient that reaches each layer:
``‖∂L/∂W_ih^(l)‖``, the norm of the loss gradient on layer ``l``'s input weights, averaged over a few test
batches at initialisation and after training. The first layer's is the one the whole stack sits on.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from seqtasks.analysis.plain import (
    Encoded,
    TrainSettings,
    batch,
    entity_f1,
    predict,
    recurrent_parameters,
    recurrent_tagger,
    token_loss,
    train_tagger,
    trainable,
)


def layer_gradient_norms(
    network: nn.Module, data: Encoded, rows: int = 128, batch_size: int = 32
) -> list[float]:
    """Mean ``‖∂L/∂W_ih^(l)‖`` per layer ``l`` (first layer first) over the first ``rows`` sentences."""
    rnn = network.encoder.rnn
    names = [f"weight_ih_l{layer}" for layer in range(rnn.num_layers)]
    totals = [0.0] * len(names)
    was_training = network.training
    network.eval()  # no dropout: the gradient of the model itself
    count = 0
    for start in range(0, min(rows, len(data)), batch_size):
        b = batch(data, range(start, min(start + batch_size, rows, len(data))))
        network.zero_grad()
        scores = network(b["words"], b["chars"], b["casing"], b["lengths"])
        token_loss(scores, b["tags"], b["lengths"]).backward()
        for i, name in enumerate(names):
            totals[i] += float(getattr(rnn, name).grad.norm())
        count += 1
    network.zero_grad()
    network.train(was_training)
    return [t / max(count, 1) for t in totals]


def run_depth(
    train: Encoded,
    test: Encoded,
    labels: list[str],
    vocab_size: int,
    cells: list[str],
    depths: list[int],
    hidden: int,
    settings: TrainSettings,
    log=print,
) -> list[dict[str, Any]]:
    rows = []
    gold = [[labels[t] for t in tags] for tags in test.tags]
    for cell in cells:
        for layers in depths:
            torch.manual_seed(settings.seed)
            network = recurrent_tagger(vocab_size, labels, cell, hidden, layers, bidirectional=False)
            init = layer_gradient_norms(network, test)
            timing = train_tagger(network, train, settings)
            trained = layer_gradient_norms(network, test)
            predicted = predict(network, test)
            correct = sum(
                p == g
                for ps, gs in zip(predicted, test.tags, strict=True)
                for p, g in zip(ps, gs, strict=True)
            )
            tokens = sum(len(t) for t in test.tags)
            f1 = entity_f1([[labels[t] for t in p] for p in predicted], gold, labels)
            encoder_parameters = trainable(network.encoder)
            row = {
                "cell": cell,
                "layers": layers,
                "test_f1": round(f1, 2),
                "test_token_acc": round(correct / tokens, 4),
                "train_seconds": round(timing["seconds"], 1),
                "steps": timing["steps"],
                "encoder_parameters": encoder_parameters,
                "encoder_parameters_closed_form": recurrent_parameters(
                    cell, network.encoder.input_size, hidden, 0, layers
                ),
                "grad_first_layer_init": init[0],
                "grad_last_layer_init": init[-1],
                "grad_first_layer_trained": trained[0],
                "grad_last_layer_trained": trained[-1],
                "grad_per_layer_init": " ".join(f"{g:.3g}" for g in init),
                "grad_per_layer_trained": " ".join(f"{g:.3g}" for g in trained),
            }
            log(
                f"  depth {cell} x{layers}: F1 {row['test_f1']:.1f}, {row['train_seconds']:.0f} s, "
                f"first-layer grad {init[0]:.3g} (init) {trained[0]:.3g} (trained)"
            )
            rows.append(row)
    return rows
