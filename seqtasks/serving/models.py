"""The served models: a checkpoint's predictor, the requests its task answers, and their records.

Every model is loaded through the one inference API (:mod:`seqtasks.inference`): the checkpoint's task
decides which predictor (``Classifier``, ``Tagger``, ``Translator`` or ``Composer``) and which endpoint
(``classify``, ``tag``, ``translate``, ``generate``) it answers. Records are what the commands'
``--format jsonl`` writes (the predictor's ``records`` when it has one), one per input, ids from 1.

Limits (a request beyond them is refused with 413): :data:`MAX_CHARS` characters per text,
:data:`MAX_TEXTS` texts per request, :data:`MAX_STEPS` generated steps, :data:`MAX_BEAM` beam width.
"""

from __future__ import annotations

import base64
import inspect
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

MAX_CHARS = 5_000
MAX_TEXTS = 64
MAX_STEPS = 2_000
MAX_BEAM = 16
KINDS = ("classify", "tag", "translate", "generate")


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message for the client."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ServedModel:
    """One checkpoint behind the server.

    Attributes:
        name: the model's name in the URL (``/api/{name}/{kind}``).
        kind: the endpoint it answers: ``classify``, ``tag``, ``translate`` or ``generate``.
        predictor: its predictor from :mod:`seqtasks.inference`.
        path: the checkpoint file.
        info: what ``GET /api/models`` says about it (task class, labels, ...).
    """

    name: str
    kind: str
    predictor: Any
    path: str
    info: dict[str, Any] = field(default_factory=dict)
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "endpoint": f"/api/{self.name}/{self.kind}",
            **self.info,
        }


def load_model(path: str | os.PathLike, name: str | None = None) -> ServedModel:
    """The served model of a checkpoint of any task; its name defaults to the file's stem."""
    from seqtasks.checkpoints import load_trained, task_kind
    from seqtasks.inference.classification import Classifier
    from seqtasks.inference.music import Composer
    from seqtasks.inference.tagging import Tagger
    from seqtasks.inference.translation import Translator
    from seqtasks.networks.classifier import ClassifierNetwork
    from seqtasks.networks.music import EventNetwork, PianoRollNetwork
    from seqtasks.networks.seq2seq import Seq2SeqNetwork
    from seqtasks.networks.tagger import TaggerNetwork

    path = os.fspath(path)
    name = name or os.path.splitext(os.path.basename(path))[0]
    task = load_trained(path)
    network = getattr(task, "network", None)
    info: dict[str, Any] = {"task": task_kind(task), "checkpoint": os.path.basename(path)}
    if isinstance(network, ClassifierNetwork):
        predictor, kind = Classifier.from_task(task), "classify"
        info["labels"] = list(predictor.labels)
    elif isinstance(network, TaggerNetwork):
        predictor, kind = Tagger.from_task(task), "tag"
        info["labels"] = list(predictor.labels)
        info["crf"] = getattr(network, "crf", None) is not None
    elif isinstance(network, Seq2SeqNetwork):
        predictor, kind = Translator.from_task(task), "translate"
        info["nbest"] = supports_nbest(predictor)
    elif isinstance(network, EventNetwork | PianoRollNetwork):
        predictor, kind = Composer(task), "generate"
        info["steps_per_quarter"] = predictor.steps_per_quarter
        info["default_steps"] = predictor.default_steps
        info["representation"] = "events" if isinstance(network, EventNetwork) else "piano roll"
    else:
        raise TypeError(f"{path}: a {task_kind(task)} is not a task the server knows")
    return ServedModel(name, kind, predictor, path, info)


# ---- request fields ---------------------------------------------------------------------------------
def _integer(body: dict[str, Any], key: str, default: int | None, low: int, high: int | None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(400, f"field {key!r} must be an integer, got {type(value).__name__}")
    if value < low:
        raise RequestError(400, f"field {key!r} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise RequestError(413, f"field {key!r} may be at most {high}, got {value}")
    return value


def _number(body: dict[str, Any], key: str, default: float | None, low: float, high: float) -> float | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(400, f"field {key!r} must be a number, got {type(value).__name__}")
    if not low <= value <= high:
        raise RequestError(400, f"field {key!r} must be between {low} and {high}, got {value}")
    return float(value)


def request_texts(body: dict[str, Any]) -> tuple[list[str], bool]:
    """The texts of a request: ``{"text": ...}`` (one; answered with one record) or ``{"texts": [...]}``."""
    if ("text" in body) == ("texts" in body):
        raise RequestError(400, "give either 'text' (a string) or 'texts' (a list of strings)")
    single = "text" in body
    texts = [body["text"]] if single else body["texts"]
    if not isinstance(texts, list):
        raise RequestError(400, f"field 'texts' must be a list of strings, got {type(texts).__name__}")
    if not texts:
        raise RequestError(400, "field 'texts' is empty")
    if len(texts) > MAX_TEXTS:
        raise RequestError(413, f"at most {MAX_TEXTS} texts per request, got {len(texts)}")
    where = (lambda i: "field 'text'") if single else (lambda i: f"texts[{i}]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise RequestError(400, f"{where(i)} must be a string, got {type(text).__name__}")
        if not text.strip():
            raise RequestError(400, f"{where(i)} is empty")
        if len(text) > MAX_CHARS:
            raise RequestError(413, f"{where(i)} has {len(text)} characters; the limit is {MAX_CHARS}")
    return texts, single


def translate_settings(body: dict[str, Any]) -> tuple[int, int]:
    """``(beam, nbest)`` of a translate request (defaults 1 and 1; ``nbest`` at most ``beam``)."""
    beam = _integer(body, "beam", 1, 1, MAX_BEAM)
    nbest = _integer(body, "nbest", 1, 1, MAX_BEAM)
    assert beam is not None and nbest is not None
    if nbest > beam:
        raise RequestError(400, f"field 'nbest' ({nbest}) may not exceed 'beam' ({beam})")
    return beam, nbest


def generate_settings(body: dict[str, Any], model: ServedModel) -> dict[str, Any]:
    """The sampling settings of a generate request, checked (defaults: the model's length, seed 0)."""
    steps = _integer(body, "steps", min(model.predictor.default_steps, MAX_STEPS), 1, MAX_STEPS)
    settings = {
        "steps": steps,
        "temperature": _number(body, "temperature", 1.0, 0.0, 100.0),
        "top_k": _integer(body, "top_k", None, 1, None),
        "top_p": _number(body, "top_p", None, 0.0, 1.0),
        "seed": _integer(body, "seed", 0, 0, 2**63 - 1),
        "min_steps": _integer(body, "min_steps", 0, 0, steps),
    }
    if settings["temperature"] is None:
        raise RequestError(400, "field 'temperature' must be a number, got NoneType")
    return settings


# ---- predictor calls (run in the model's worker thread) ---------------------------------------------
def supports_nbest(translator: Any) -> bool:
    """Whether this ``Translator`` gives n-best lists (a ``translate_nbest`` method or ``nbest`` keyword)."""
    if hasattr(translator, "translate_nbest"):
        return True
    return "nbest" in inspect.signature(translator.translate).parameters


def _accepts(function: Any, **kwargs: Any) -> dict[str, Any]:
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return kwargs
    return {k: v for k, v in kwargs.items() if k in parameters}


def classify_records(classifier: Any, texts: list[str]) -> list[dict[str, Any]]:
    ids = list(range(1, len(texts) + 1))
    if hasattr(classifier, "records"):
        return classifier.records(texts, ids=ids)
    return [
        {"id": i, "label": p.label, "probability": p.probability,
         "probabilities": dict(zip(classifier.labels, p.probabilities, strict=True))}
        for i, p in zip(ids, classifier.classify(texts), strict=True)
    ]  # fmt: skip


def _entity(entity: Any) -> dict[str, Any]:
    if isinstance(entity, dict):
        return dict(entity)
    kind, first, last, text = entity[:4]
    return {"type": kind, "first": first, "last": last, "text": text}


def tag_records(tagger: Any, texts: list[str]) -> list[dict[str, Any]]:
    ids = list(range(1, len(texts) + 1))
    if hasattr(tagger, "records"):
        return tagger.records(texts, ids=ids)
    results = tagger.tag(texts)
    records = []
    for i, result in zip(ids, results, strict=True):
        record = {"id": i, **{k: v for k, v in result.items() if k != "entities"}}
        record["entities"] = [_entity(e) for e in result["entities"]]
        records.append(record)
    return records


def _hypotheses(output: Any) -> list[dict[str, Any]]:
    """One translation's n-best list as ``[{"translation", "score"}]``, whatever shape the API gives."""
    if isinstance(output, str):
        return [{"translation": output, "score": None}]
    if isinstance(output, dict):
        if "nbest" in output:
            return _hypotheses(output["nbest"])
        return [
            {"translation": output.get("translation", output.get("text", "")), "score": output.get("score")}
        ]
    hypotheses = []
    for item in output:
        if isinstance(item, str):
            hypotheses.append({"translation": item, "score": None})
        elif isinstance(item, dict):
            hypotheses.extend(_hypotheses(item))
        else:
            text, score = item[0], item[1]
            hypotheses.append({"translation": text, "score": float(score)})
    return hypotheses


def translate_records(translator: Any, texts: list[str], beam: int, nbest: int) -> list[dict[str, Any]]:
    """``{"id", "translation", "score", "nbest": [{"translation", "score"}, ...]}`` per text.

    The translator's own ``records`` when it has them (the commands' JSONL); else its n-best, or the
    single best (an ``nbest`` list of one) where the API has no n-best.
    """
    if hasattr(translator, "records"):
        return translator.records(texts, ids=list(range(1, len(texts) + 1)), beam=beam, nbest=nbest)
    if nbest > 1 and hasattr(translator, "translate_nbest"):
        outputs = translator.translate_nbest(
            texts, **_accepts(translator.translate_nbest, beam=beam, nbest=nbest)
        )
    elif nbest > 1 and supports_nbest(translator):
        outputs = translator.translate(texts, beam=beam, nbest=nbest)
    else:
        outputs = translator.translate(texts, beam=beam)
    records = []
    for number, output in enumerate(outputs, start=1):
        hypotheses = _hypotheses(output)[:nbest]
        best = hypotheses[0]
        records.append(
            {"id": number, "translation": best["translation"], "score": best["score"], "nbest": hypotheses}
        )
    return records


def generate_record(composer: Any, settings: dict[str, Any], tempo: float = 90.0) -> dict[str, Any]:
    """A sampled piece: its notes, MIDI, WAV and piano-roll PNG (base64), and its settings."""
    notes = composer.generate(**settings)
    title = composer.title(settings["seed"], settings["temperature"])
    end = max((e for _, _, e in notes), default=0)
    duration = end / composer.steps_per_quarter * 60.0 / tempo
    encode = lambda data: base64.b64encode(data).decode("ascii")  # noqa: E731
    return {
        "id": 1,
        **settings,
        "notes": [list(note) for note in notes],
        "steps_per_quarter": composer.steps_per_quarter,
        "tempo": tempo,
        "duration_s": round(duration, 3),
        "midi": encode(composer.midi_bytes(notes, tempo, title=title)),
        "wav": encode(composer.render_wav(notes, tempo=tempo)),
        "png": encode(composer.png_bytes(notes, title=title)),
    }


def check_names(names: Sequence[str]) -> None:
    """Model names must be unique and URL-safe (letters, digits, ``-``, ``_``, ``.``)."""
    seen = set()
    for name in names:
        if not name or not all(c.isalnum() or c in "-_." for c in name):
            raise ValueError(f"model name {name!r}: use letters, digits, '-', '_' or '.'")
        if name in seen:
            raise ValueError(f"model name {name!r} is given twice; name them apart with --name")
        seen.add(name)
