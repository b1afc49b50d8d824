"""The BentoML service: Arabic NER over HTTP with ``serving.Tagger`` (ONNX Runtime, CPU).

    bentoml serve serving.service:NERService --port 3000

Routes: ``POST /tag``, ``POST /tag_batch``, ``GET /metadata``, ``GET /ui``, plus BentoML's
``/healthz``, ``/readyz``, ``/metrics`` and the Swagger page at ``/`` (spec at ``/docs.json``).

Environment:

* ``NER_MODEL_DIR``: exported model directory (default ``models/default``).
* ``NER_MAX_TEXT_CHARS``: longest accepted text, in characters (default 100000).
* ``NER_MAX_BATCH_SIZE``: most texts in one ``/tag_batch`` request (default 64).
* ``NER_API_KEY``: when set, every route except the health probes, ``/metrics`` and the API docs
  needs ``Authorization: Bearer <key>``.
* ``NER_ONNX_THREADS``: ONNX Runtime threads per inference (default: the cores this process may
  use; set it to the container's CPU quota, which CPU affinity does not show).

Both tagging routes hand their texts to one BentoML adaptive-batching dispatcher, which merges
the texts of concurrent requests into one model call; a text with no word (empty, blank) is
answered at once, without waiting in that queue. The request checks (API key, content type, sizes,
input validation) are in ``serving/guard.py``; worker deaths are logged by ``serving/worker_deaths.py``.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, NoReturn

import bentoml
from bentoml._internal.marshal.dispatcher import CorkDispatcher
from bentoml.exceptions import ServiceUnavailable
from pydantic import BaseModel, Field
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from serving import ui, worker_deaths
from serving.guard import OPEN_PATHS, RequestGuard
from serving.schema import LABEL_DESCRIPTIONS
from serving.tagger import Entity, Tagger, default_thread_count
from serving.text import has_tokens

logger = logging.getLogger("bentoml.ner")  # BentoML configures the handlers of its own logger tree

EXAMPLE_TEXT = "بعد زيارة الشرع إلى موسكو.. مبعوث بوتين إلى سوريا يلتقي وزير الخارجية الإيراني"
EXAMPLE_TEXTS = [EXAMPLE_TEXT, "وقال وزير الخارجية الإيراني عباس عراقجي في طهران"]


def _positive_int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdecimal() or int(raw) < 1:
        sys.exit(f"Cannot start the NER service: {name} must be a positive integer, got {raw!r}")
    return int(raw)


def _checked_model_dir() -> Path:
    """NER_MODEL_DIR, after one trial load.

    ``bentoml serve`` and ``bentoml build`` import this module before any worker starts, and a
    worker whose model fails to load is restarted by BentoML forever. Exiting here instead stops
    at once, with one line naming the directory and the problem.
    """
    model_dir = Path(os.environ.get("NER_MODEL_DIR", "models/default"))
    try:
        Tagger.load(model_dir)
    except Exception as exc:  # whatever failed, there is no usable model: say so and stop
        sys.exit(f"Cannot start the NER service: no usable model in NER_MODEL_DIR={model_dir}: {exc}")
    return model_dir


MAX_TEXT_CHARS = _positive_int_env("NER_MAX_TEXT_CHARS", 100_000)
MAX_BATCH_SIZE = _positive_int_env("NER_MAX_BATCH_SIZE", 64)
ONNX_THREADS = _positive_int_env("NER_ONNX_THREADS", default_thread_count())
API_KEY = os.environ.get("NER_API_KEY") or None
MODEL_DIR = _checked_model_dir()


class TagRequest(BaseModel):
    text: str = Field(
        max_length=MAX_TEXT_CHARS,
        description=f"Text to tag, at most {MAX_TEXT_CHARS} characters (NER_MAX_TEXT_CHARS).",
        examples=[EXAMPLE_TEXT],
        json_schema_extra={"example": EXAMPLE_TEXT},  # OpenAPI 3.0 (Swagger UI) reads the singular form
    )


class TagBatchRequest(BaseModel):
    texts: list[Annotated[str, Field(max_length=MAX_TEXT_CHARS)]] = Field(
        max_length=MAX_BATCH_SIZE,
        description=f"Texts to tag: at most {MAX_BATCH_SIZE} (NER_MAX_BATCH_SIZE) of at most {MAX_TEXT_CHARS} characters each.",
        examples=[EXAMPLE_TEXTS],
        json_schema_extra={"example": EXAMPLE_TEXTS},
    )


class EntityOut(BaseModel):
    text: str = Field(description="The entity as written: input[start:end].")
    label: str = Field(description="Entity type, one of /metadata's labels.")
    start: int = Field(description="Offset of the first character, in Unicode code points of the input.")
    end: int = Field(description="Offset just past the last character.")
    score: float = Field(description="Model confidence in [0, 1].")


class TagResult(BaseModel):
    entities: list[EntityOut] = Field(description="Entities in text order.")
    model: str = Field(description="Name of the model that tagged the text.")


class TagBatchResult(BaseModel):
    results: list[TagResult] = Field(description="One result per text, in the order of the texts.")


def _result(entities: list[Entity], model: str) -> TagResult:
    return TagResult(
        entities=[EntityOut(text=e.text, label=e.label, start=e.start, end=e.end, score=e.score) for e in entities],
        model=model,
    )


def _service_version() -> str:
    try:
        return version("arabic-ner")
    except PackageNotFoundError:  # a Bento carries the source, not the installed distribution
        return bentoml.server_context.bento_version or "unknown"


async def metadata(_: Request) -> JSONResponse:
    tagger: Tagger = bentoml.get_current_service().tagger
    return JSONResponse(
        {
            "model": tagger.name,
            "labels": list(tagger.entity_labels),
            "label_descriptions": {label: LABEL_DESCRIPTIONS.get(label, label) for label in tagger.entity_labels},
            "max_text_chars": MAX_TEXT_CHARS,
            "max_batch_texts": MAX_BATCH_SIZE,
            "version": _service_version(),
            "model_details": tagger.metadata,
        }
    )


# BentoML API routes take POST only; the GET pages live in a small Starlette app. Mounted at "/",
# it answers only its own paths (BentoML mounts are passive).
pages = Starlette(routes=[Route("/metadata", metadata), Route("/ui", ui.page)])


def _overloaded() -> NoReturn:
    raise ServiceUnavailable("overloaded: the request waited in the batching queue past its latency budget")


@bentoml.service(
    resources={"cpu": "2", "memory": "2Gi"},
    workers=1,  # ONNX Runtime spreads one batch over all the replica's cores
    # Past 128 requests in flight BentoML answers 429 at once instead of queueing toward the timeout.
    traffic={"timeout": 60, "max_concurrency": 128},
)
@bentoml.mount_asgi_app(pages, path="/")
class NERService:
    def __init__(self) -> None:
        import prometheus_client  # only now: BentoML sets up multiprocess metrics after importing this module

        self.tagger = Tagger.load(MODEL_DIR, intra_op_num_threads=ONNX_THREADS)
        self.batch_requests = prometheus_client.Histogram(
            "ner_batch_requests", "Requests merged into one model call by adaptive batching", buckets=[2**i for i in range(7)]
        )
        # BentoML's adaptive-batching dispatcher (the one behind @bentoml.api(batchable=True)), shared
        # by /tag and /tag_batch. Called directly: reaching a batchable API from another API goes
        # through BentoML's in-process HTTP proxy, which costs about half the throughput and, in
        # BentoML 1.4.39, drops in-flight calls whenever it renews its session (bentoml#5540, #5698).
        self.tag_texts = CorkDispatcher(max_latency_in_ms=30_000, max_batch_size=MAX_BATCH_SIZE, fallback=_overloaded, get_batch_size=len)(
            self._tag_merged
        )
        self.worker_marker = worker_deaths.worker_started(bentoml.server_context.worker_index or 1, logger)
        logger.info(
            "Model %r loaded from %s; limits: %d characters per text, %d texts per batch",
            self.tagger.name,
            MODEL_DIR,
            MAX_TEXT_CHARS,
            MAX_BATCH_SIZE,
        )
        if API_KEY is None:
            logger.warning("NER_API_KEY is not set: all routes are open, without authentication")
        else:
            logger.info("NER_API_KEY is set: all routes but %s need 'Authorization: Bearer <key>'", ", ".join(sorted(OPEN_PATHS)))

    @bentoml.on_deployment
    def _before_workers_start() -> None:
        worker_deaths.clear_markers(os.getpid())  # runs in the arbiter, the workers' parent

    @bentoml.on_shutdown
    def _shut_down_cleanly(self) -> None:
        self.worker_marker.unlink(missing_ok=True)

    async def _tag(self, texts: list[str]) -> list[TagResult]:
        """Texts with no token (empty, blank, only invisible marks) are answered at once; the others
        go through the batching queue together."""
        wordy = [has_tokens(text) for text in texts]
        queued = [text for text, has_words in zip(texts, wordy, strict=True) if has_words]
        tagged = iter(await self.tag_texts(queued) if queued else [])
        return [next(tagged) if has_words else TagResult(entities=[], model=self.tagger.name) for has_words in wordy]

    def _tag_merged(self, requests: Sequence[list[str]]) -> list[list[TagResult]]:
        """One model call for the texts of several requests (run in a worker thread by the dispatcher)."""
        self.batch_requests.observe(len(requests))
        texts = [text for request in requests for text in request]
        results = iter([_result(entities, self.tagger.name) for entities in self.tagger.tag(texts)])
        return [[next(results) for _ in request] for request in requests]

    @bentoml.api(input_spec=TagRequest)
    async def tag(self, text: str) -> TagResult:
        """Tag one text: its entities, with character offsets into it."""
        [result] = await self._tag([text])
        return result

    @bentoml.api(input_spec=TagBatchRequest)
    async def tag_batch(self, texts: list[str]) -> TagBatchResult:
        """Tag several texts: one result per text, in order."""
        return TagBatchResult(results=await self._tag(texts))


# Tagging routes: their input model, and the most texts one request may carry (serving/guard.py).
TAG_ROUTES = {"/tag": (TagRequest, 1), "/tag_batch": (TagBatchRequest, MAX_BATCH_SIZE)}
NERService.add_asgi_middleware(RequestGuard, api_key=API_KEY, max_text_chars=MAX_TEXT_CHARS, routes=TAG_ROUTES)
