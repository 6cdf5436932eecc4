"""``seqtasks serve`` in a subprocess on the tiny legacy checkpoints: every endpoint with good and bad
requests, concurrent requests batched, the server stopping by itself; and a 500 without a traceback."""

from __future__ import annotations

import base64
import io
import re
import threading
import wave
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fixtures.serving import LEGACY, serve

from seqtasks.inference.classification import Classifier
from seqtasks.inference.music import Composer
from seqtasks.inference.tagging import Tagger
from seqtasks.inference.translation import Translator
from seqtasks.music.midi import midi_to_notes
from seqtasks.serving.models import (
    MAX_CHARS,
    MAX_STEPS,
    MAX_TEXTS,
    classify_records,
    tag_records,
    translate_records,
)

MODELS = ["tagger", "classifier", "translator", "events", "pianoroll"]


@pytest.fixture(scope="module")
def server():
    with serve(MODELS, ["--max-wait-ms", "50", "--max-batch", "32"]) as running:
        yield running


def post(server, path: str, body=None, content: bytes | None = None) -> httpx.Response:
    if content is not None:
        return httpx.post(server.url + path, content=content, timeout=30)
    return httpx.post(server.url + path, json=body, timeout=30)


def test_models_lists_every_model_with_its_task_and_limits(server) -> None:
    data = httpx.get(server.url + "/api/models", timeout=10).json()
    kinds = {m["name"]: m["kind"] for m in data["models"]}
    assert kinds == {
        "tagger": "tag", "classifier": "classify", "translator": "translate",
        "events": "generate", "pianoroll": "generate",
    }  # fmt: skip
    by_name = {m["name"]: m for m in data["models"]}
    assert by_name["classifier"]["labels"] == ["neg", "pos"]
    assert "B-PER" in by_name["tagger"]["labels"]
    assert data["limits"] == {
        "max_chars": MAX_CHARS,
        "max_texts": MAX_TEXTS,
        "max_steps": MAX_STEPS,
        "max_beam": 16,
    }


def test_page_is_one_self_contained_html_file(server) -> None:
    response = httpx.get(server.url + "/", timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script>" in page and "<style>" in page
    assert "http://" not in page and "https://" not in page and 'src="//' not in page  # no CDN


def test_tag_and_classify_answer_the_records_of_the_inference_api(server) -> None:
    tagger = Tagger.from_checkpoint(LEGACY / "tagger.ckpt")
    texts = ["Dhaval loves baby yoda", "Peter visited Paris ."]
    single = post(server, "/api/tagger/tag", {"text": texts[0]})
    assert single.status_code == 200
    assert single.json() == tag_records(tagger, texts[:1])[0]
    assert [e["type"] for e in single.json()["entities"]] == ["PER"]  # what the tiny tagger finds
    many = post(server, "/api/tagger/tag", {"texts": texts})
    assert many.json() == {"records": tag_records(tagger, texts)}

    classifier = Classifier.from_checkpoint(LEGACY / "classifier.ckpt")
    reviews = ["a wonderful film", "dull and boring", "zzzz unknown"]
    answer = post(server, "/api/classifier/classify", {"texts": reviews}).json()["records"]
    assert answer == classify_records(classifier, reviews)
    for record in answer:
        assert record["probabilities"].keys() == {"neg", "pos"}
        assert abs(sum(record["probabilities"].values()) - 1) < 1e-5


def test_translate_gives_the_best_and_the_nbest_list(server) -> None:
    translator = Translator.from_checkpoint(LEGACY / "translator.ckpt")
    greedy = post(server, "/api/translator/translate", {"text": "how are you?"}).json()
    assert greedy["translation"] == translator.translate(["how are you?"])[0]
    assert greedy["id"] == 1 and len(greedy["nbest"]) == 1
    record = post(server, "/api/translator/translate", {"text": "how are you?", "beam": 4, "nbest": 3}).json()
    assert record == translate_records(translator, ["how are you?"], 4, 3)[0]
    assert 1 <= len(record["nbest"]) <= 3
    scores = [h["score"] for h in record["nbest"]]
    if None not in scores:  # the n-best API gives scores: best first
        assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("events", {"steps": 64, "seed": 3, "min_steps": 10, "top_p": 0.9}),
        ("pianoroll", {"steps": 16, "seed": 2}),
    ],
)
def test_generate_gives_notes_midi_wav_and_png(server, model: str, body: dict) -> None:
    response = post(server, f"/api/{model}/generate", body)
    assert response.status_code == 200, response.text
    record = response.json()
    composer = Composer.from_checkpoint(LEGACY / f"{model}.ckpt")
    settings = {
        k: body.get(k, d) for k, d in [("steps", None), ("seed", 0), ("min_steps", 0), ("top_p", None)]
    }
    notes = composer.generate(**settings)
    assert [tuple(n) for n in record["notes"]] == notes
    midi = base64.b64decode(record["midi"])
    assert midi_to_notes(midi, composer.steps_per_quarter)[0] == notes
    wav = base64.b64decode(record["wav"])
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE"
    with wave.open(io.BytesIO(wav)) as handle:
        assert handle.getnframes() / handle.getframerate() >= record["duration_s"] - 0.01
    assert base64.b64decode(record["png"])[:4] == b"\x89PNG"


BAD = [
    ("/api/tagger/tag", b"{not json", 400, "invalid JSON"),
    ("/api/tagger/tag", b"", 400, "empty request body"),
    ("/api/tagger/tag", b"[1, 2]", 400, "must be a JSON object, got list"),
    ("/api/tagger/tag", {}, 400, "give either 'text'"),
    ("/api/tagger/tag", {"text": "a", "texts": ["b"]}, 400, "give either 'text'"),
    ("/api/tagger/tag", {"text": 5}, 400, "field 'text' must be a string, got int"),
    ("/api/tagger/tag", {"text": "   "}, 400, "field 'text' is empty"),
    ("/api/tagger/tag", {"texts": "a"}, 400, "'texts' must be a list of strings, got str"),
    ("/api/tagger/tag", {"texts": []}, 400, "'texts' is empty"),
    ("/api/tagger/tag", {"texts": ["ok", None]}, 400, r"texts\[1\] must be a string"),
    ("/api/tagger/tag", {"text": "x" * (MAX_CHARS + 1)}, 413, f"the limit is {MAX_CHARS}"),
    ("/api/classifier/classify", {"texts": ["a"] * (MAX_TEXTS + 1)}, 413, f"at most {MAX_TEXTS} texts"),
    ("/api/nosuch/tag", {"text": "a"}, 404, "unknown model 'nosuch'; the models are: tagger, classifier"),
    (
        "/api/tagger/classify",
        {"text": "a"},
        400,
        "'tagger' does not classify; it answers POST /api/tagger/tag",
    ),
    ("/api/classifier/translate", {"text": "a"}, 400, "does not translate"),
    ("/api/translator/tag", {"text": "a"}, 400, "does not tag"),
    ("/api/tagger/generate", {}, 400, "does not generate"),
    ("/api/translator/translate", {"text": "a", "beam": 0}, 400, "'beam' must be at least 1"),
    ("/api/translator/translate", {"text": "a", "beam": "3"}, 400, "'beam' must be an integer, got str"),
    ("/api/translator/translate", {"text": "a", "beam": 2, "nbest": 3}, 400, r"'nbest' \(3\) may not exceed"),
    ("/api/translator/translate", {"text": "a", "beam": 99}, 413, "'beam' may be at most 16"),
    ("/api/events/generate", {"steps": MAX_STEPS + 1}, 413, f"'steps' may be at most {MAX_STEPS}"),
    ("/api/events/generate", {"steps": True}, 400, "'steps' must be an integer, got bool"),
    ("/api/events/generate", {"temperature": -1}, 400, "'temperature' must be between"),
    ("/api/events/generate", {"top_p": 1.5}, 400, "'top_p' must be between"),
    ("/api/pianoroll/generate", {"top_p": 0.9}, 400, "top_p does not apply to a piano-roll model"),
    ("/api/nothing", {}, 404, "no such endpoint: POST /api/nothing"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD, ids=[f"{b[0]}:{b[3][:24]}" for b in BAD])
def test_a_bad_request_gets_a_4xx_json_error_and_the_server_keeps_serving(
    server, path, body, status, message
):
    response = post(server, path, content=body) if isinstance(body, bytes) else post(server, path, body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert "Traceback" not in error
    assert re.search(message, error), error
    assert post(server, "/api/tagger/tag", {"text": "Paris"}).status_code == 200


def test_wrong_method_is_a_json_405(server) -> None:
    response = httpx.get(server.url + "/api/tagger/tag", timeout=10)
    assert response.status_code == 405
    assert response.json() == {"error": "GET is not allowed on /api/tagger/tag"}


def test_concurrent_requests_are_all_answered_and_batched(server) -> None:
    classifier = Classifier.from_checkpoint(LEGACY / "classifier.ckpt")
    texts = [f"a film number {i} that was {'great' if i % 2 else 'dull'}" for i in range(16)]
    expected = classify_records(classifier, texts)
    before = httpx.get(server.url + "/api/stats", timeout=10).json()["models"]["classifier"]
    start = threading.Barrier(len(texts), timeout=20)

    def ask(i: int) -> dict:
        start.wait()
        response = post(server, "/api/classifier/classify", {"text": texts[i]})
        assert response.status_code == 200, response.text
        return response.json()

    with ThreadPoolExecutor(len(texts)) as pool:
        answers = list(pool.map(ask, range(len(texts)), timeout=60))
    for answer, record in zip(answers, expected, strict=True):
        # batched with others (padded to their length): the same label, probabilities to float32 precision
        assert answer["label"] == record["label"]
        assert answer["probabilities"] == pytest.approx(record["probabilities"], abs=1e-5)
    after = httpx.get(server.url + "/api/stats", timeout=10).json()["models"]["classifier"]
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == len(texts)
    assert batches < requests, f"{requests} requests ran as {batches} batches: nothing was batched"
    assert after["largest_batch"] > 1


def test_the_server_stops_by_itself_after_max_requests() -> None:
    with serve(["tagger"], ["--max-requests", "3"]) as running:  # readiness took one (/api/models)
        assert post(running, "/api/tagger/tag", {"text": "Paris"}).status_code == 200
        assert post(running, "/api/tagger/tag", {"text": "Rome"}).status_code == 200
        assert running.process.wait(timeout=15) == 0
        assert "stopping: answered 3 requests (--max-requests)" in running.log()


def test_an_unexpected_failure_is_a_short_json_500_and_is_logged(caplog) -> None:
    from fastapi.testclient import TestClient

    from seqtasks.serving.app import create_app
    from seqtasks.serving.models import ServedModel

    class Broken:
        labels = ("a", "b")

        def classify(self, texts):
            raise RuntimeError("the disk is on fire")

    app = create_app([ServedModel("broken", "classify", Broken(), "broken.ckpt")])
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post("/api/broken/classify", json={"text": "hello"})
        assert response.status_code == 500
        assert response.json() == {"error": "internal error (RuntimeError); the server log has the details"}
        assert client.get("/api/models").status_code == 200  # still serving
    assert "the disk is on fire" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ckpt", "nope.ckpt"], "seqtasks serve: nope.ckpt: no such checkpoint file"),
        (["--ckpt", str(LEGACY / "expected.pt")], "not a seqtasks checkpoint"),
        (["--ckpt", str(LEGACY / "tagger.ckpt")] * 2, "model name 'tagger' is given twice"),
        (["--ckpt", str(LEGACY / "tagger.ckpt"), "--name", "a/b"], "model name 'a/b': use letters"),
    ],
)
def test_serve_refuses_bad_checkpoints_and_names_with_a_message(args: list[str], message: str) -> None:
    from seqtasks.cli import main

    with pytest.raises(SystemExit) as raised:
        main(["serve", *args])
    assert message in str(raised.value)
