"""``seqtasks serve``: checkpoints of any task behind one HTTP server, a JSON API per model and a web page.

* :mod:`seqtasks.serving.models` wraps each checkpoint's predictor (the one inference API of
  :mod:`seqtasks.inference`) and turns requests into the records the commands' JSONL output uses.
* :mod:`seqtasks.serving.batching` gathers concurrent requests to one model into one predictor call.
* :mod:`seqtasks.serving.app` is the FastAPI application and the uvicorn runner.
* :mod:`seqtasks.serving.page` is the self-contained page served at ``/``.
"""
