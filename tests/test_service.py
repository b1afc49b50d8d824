"""The BentoML service, tested through a real ``bentoml serve`` subprocess over the tiny model.

One open server and one with NER_API_KEY (and small limits) per test session; see
tests/service_fixtures.py. Every assertion on a response carries the server's log tail.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import httpx
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.service_fixtures import API_KEY, ServiceProcess, same_result

ROOT = Path(__file__).resolve().parents[1]
SEED_TEXT = sorted((ROOT / "seeds").glob("*.txt"))[0].read_text(encoding="utf-8")
PARAGRAPH = max(SEED_TEXT.split("\n\n"), key=len).strip()  # several sentences, many entities
SENTENCES = [s.strip() for s in re.split(r"(?<=[.؟!])\s+", PARAGRAPH) if s.strip()]


def as_result(entities, model: str) -> dict:
    return {
        "entities": [{"text": e.text, "label": e.label, "start": e.start, "end": e.end, "score": e.score} for e in entities],
        "model": model,
    }


def tag(server: ServiceProcess, text: str) -> dict:
    response = httpx.post(f"{server.url}/tag", json={"text": text}, timeout=60)
    assert response.status_code == 200, server.explain(response)
    return response.json()


def batch_counters(server: ServiceProcess) -> tuple[float, float]:
    """(sum, count) of the service's histogram of requests merged per model call."""
    text = httpx.get(f"{server.url}/metrics").text
    found = dict(re.findall(r"^ner_batch_requests_(sum|count)(?:\{[^}]*\})? (\S+)$", text, re.M))
    return float(found.get("sum", 0)), float(found.get("count", 0))


# ---- correct answers ----------------------------------------------------------------------------


def test_tag_returns_the_taggers_entities_with_offsets_into_the_input(ner_service, tiny_onnx_dir):
    from serving.tagger import Tagger

    tagger = Tagger.load(tiny_onnx_dir)
    body = tag(ner_service, PARAGRAPH)
    assert body["entities"], "the tiny model, trained on the seeds, finds entities in a seed paragraph"
    expected = as_result(tagger.tag([PARAGRAPH])[0], tagger.name)
    assert same_result(body, expected, tolerance=1e-9), f"{body}\n!=\n{expected}"
    for entity in body["entities"]:
        assert PARAGRAPH[entity["start"] : entity["end"]] == entity["text"]


def test_offsets_count_code_points_of_the_input_whatever_it_holds(ner_service):
    # An emoji (two UTF-16 units), tatweel, diacritics, a zero-width joiner and CRLF before the entities.
    text = "😀 قال\u200dوا: «مبعوثُ بوتيـــن» في\r\nموسكو. " + SENTENCES[0]
    body = tag(ner_service, text)
    assert body["entities"]
    for entity in body["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"]


def test_empty_and_blank_texts_are_answered_without_entering_the_batching_queue(ner_service):
    """Their answer is known at once: no model call is made for them (the histogram of requests
    merged per model call does not move), alone or beside a text that is tagged."""
    model = tag(ner_service, PARAGRAPH)["model"]
    before = batch_counters(ner_service)
    for text in ["", "   \n\t ", "\u200f"]:
        assert tag(ner_service, text) == {"entities": [], "model": model}
    blank_batch = httpx.post(f"{ner_service.url}/tag_batch", json={"texts": ["", " "]}, timeout=60)
    assert blank_batch.json() == {"results": [{"entities": [], "model": model}] * 2}, ner_service.explain(blank_batch)
    assert batch_counters(ner_service) == before
    mixed = httpx.post(f"{ner_service.url}/tag_batch", json={"texts": ["", SENTENCES[0], " "]}, timeout=60).json()["results"]
    assert (mixed[0], mixed[2]) == ({"entities": [], "model": model},) * 2 and same_result(mixed[1], tag(ner_service, SENTENCES[0]))
    assert batch_counters(ner_service)[1] == before[1] + 2  # the mixed batch and the single /tag: one model call each


def test_tag_batch_answers_each_text_in_order_as_tag_does(ner_service):
    texts = [SENTENCES[0], "", PARAGRAPH, SENTENCES[-1], SENTENCES[0]]
    response = httpx.post(f"{ner_service.url}/tag_batch", json={"texts": texts}, timeout=60)
    assert response.status_code == 200, ner_service.explain(response)
    results = response.json()["results"]
    assert len(results) == len(texts)
    for text, result in zip(texts, results, strict=True):
        assert same_result(result, tag(ner_service, text)), (text, result)
    empty = httpx.post(f"{ner_service.url}/tag_batch", json={"texts": []})
    assert (empty.status_code, empty.json()) == (200, {"results": []}), ner_service.explain(empty)


def test_metadata_describes_model_labels_and_limits(ner_service, tiny_onnx_dir):
    from serving.tagger import Tagger

    tagger = Tagger.load(tiny_onnx_dir)
    response = httpx.get(f"{ner_service.url}/metadata")
    assert response.status_code == 200, ner_service.explain(response)
    metadata = response.json()
    assert metadata["model"] == tagger.name
    assert metadata["labels"] == list(tagger.entity_labels)
    assert set(metadata["label_descriptions"]) == set(metadata["labels"])
    assert (metadata["max_text_chars"], metadata["max_batch_texts"]) == (100_000, 64)
    assert metadata["model_details"]["max_windows_per_run"] == tagger.max_batch_size  # one meaning per field
    assert "max_batch_size" not in metadata and "max_batch_size" not in metadata["model_details"]
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", metadata["version"])


def test_bentoml_probes_metrics_and_docs_stay_available(ner_service):
    for path in ["/healthz", "/livez", "/readyz", "/metrics", "/"]:
        response = httpx.get(f"{ner_service.url}{path}")
        assert response.status_code == 200, ner_service.explain(response)
    spec = httpx.get(f"{ner_service.url}/docs.json").json()
    example = spec["paths"]["/tag"]["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["text"]["example"]
    assert re.search("[\u0600-\u06ff]", example), "the Swagger page shows an Arabic example"
    assert "ner_batch_requests" in httpx.get(f"{ner_service.url}/metrics").text


# ---- bad input: never a 5xx ---------------------------------------------------------------------

LONG_TEXT = "ب" * 100_001
BAD_INPUTS = [
    # (id, path, request kwargs, status, words the error must contain)
    ("missing-field", "/tag", {"json": {}}, 422, ["text", "required"]),
    ("wrong-type", "/tag", {"json": {"text": 5}}, 422, ["text", "string"]),
    ("null-text", "/tag", {"json": {"text": None}}, 422, ["text"]),
    ("array-body", "/tag", {"json": ["موسكو"]}, 422, ["body", "object"]),
    ("empty-body", "/tag", {"content": b"", "headers": {"Content-Type": "application/json"}}, 422, ["text", "required"]),
    ("not-json", "/tag", {"content": b"text=hello", "headers": {"Content-Type": "application/json"}}, 400, ["JSON"]),
    ("truncated-json", "/tag", {"content": b'{"text": "abc', "headers": {"Content-Type": "application/json"}}, 400, ["JSON"]),
    ("invalid-utf8", "/tag", {"content": b'{"text": "\xd9\x85\xff"}', "headers": {"Content-Type": "application/json"}}, 400, ["UTF-8"]),
    ("lone-surrogate", "/tag", {"content": b'{"text": "\\ud800"}', "headers": {"Content-Type": "application/json"}}, 400, ["JSON"]),
    ("form-body", "/tag", {"data": {"text": "موسكو"}}, 415, ["application/json"]),
    ("text-plain", "/tag", {"content": "موسكو".encode(), "headers": {"Content-Type": "text/plain"}}, 415, ["application/json"]),
    ("text-too-long", "/tag", {"json": {"text": LONG_TEXT}}, 413, ["100000", "NER_MAX_TEXT_CHARS"]),
    ("batch-missing", "/tag_batch", {"json": {"text": "موسكو"}}, 422, ["texts", "required"]),
    ("batch-not-list", "/tag_batch", {"json": {"texts": "موسكو"}}, 422, ["texts", "array"]),
    ("batch-item-type", "/tag_batch", {"json": {"texts": ["موسكو", 7]}}, 422, ["texts[1]", "string"]),
    ("batch-too-big", "/tag_batch", {"json": {"texts": ["موسكو"] * 65}}, 413, ["64", "NER_MAX_BATCH_SIZE"]),
    ("batch-item-too-long", "/tag_batch", {"json": {"texts": ["موسكو", LONG_TEXT]}}, 413, ["texts[1]", "100000"]),
]


@pytest.mark.parametrize(("path", "kwargs", "status", "words"), [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_gets_a_4xx_that_says_what_is_wrong(ner_service, path, kwargs, status, words):
    response = httpx.post(f"{ner_service.url}{path}", timeout=30, **kwargs)
    assert response.status_code == status, ner_service.explain(response)
    error = response.json()["error"]
    for word in words:
        assert word.lower() in error.lower(), error


def test_wrong_methods_get_405(ner_service):
    assert httpx.get(f"{ner_service.url}/tag").status_code == 405
    assert httpx.post(f"{ner_service.url}/metadata").status_code == 405


def test_a_body_too_large_for_any_valid_request_is_refused_before_it_is_read(ner_service):
    """A client announcing a huge body gets 413 at once: the server does not wait for the bytes."""
    with socket.create_connection(("127.0.0.1", ner_service.port), timeout=10) as sock:
        sock.sendall(b"POST /tag HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 999999999999\r\n\r\n{")
        reply = sock.recv(65536).decode("utf-8", "replace")
    assert reply.startswith("HTTP/1.1 413"), reply


# ---- concurrency and adaptive batching ----------------------------------------------------------


def test_concurrent_clients_get_the_single_request_answers(ner_service):
    texts = [*SENTENCES[:6], PARAGRAPH, ""]
    expected = {text: tag(ner_service, text) for text in texts}
    before = batch_counters(ner_service)
    failures: list[str] = []

    async def client(index: int, http: httpx.AsyncClient) -> None:
        for i in range(50):
            text = texts[(index + i) % len(texts)]
            response = await http.post("/tag", json={"text": text})
            if response.status_code != 200 or not same_result(response.json(), expected[text]):
                failures.append(f"client {index} request {i}: {response.status_code} {response.text[:300]}")

    async def run() -> None:
        async with httpx.AsyncClient(base_url=ner_service.url, timeout=60) as http:
            await asyncio.gather(*(client(index, http) for index in range(8)))

    asyncio.run(run())
    assert not failures, f"{len(failures)} of 400 requests failed, e.g. {failures[:3]}\n{ner_service.log_tail()}"
    merged, calls = (after - first for after, first in zip(batch_counters(ner_service), before, strict=True))
    queued = sum(1 for index in range(8) for i in range(50) if texts[(index + i) % len(texts)])  # "" is answered without a model call
    assert merged == queued and calls < merged, f"adaptive batching merged no requests: {merged} requests in {calls} model calls"


# ---- fuzzing: zero 5xx --------------------------------------------------------------------------

FUZZ_SECONDS = 25


def test_schema_driven_fuzzing_finds_no_server_error(ner_service):
    """Schemathesis cases, valid and invalid, for every operation of /docs.json."""
    schema = schemathesis.openapi.from_url(f"{ner_service.url}/docs.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/tag", "/tag_batch"} <= {operation.path for operation in operations}
    strategy = st.one_of([operation.as_strategy(mode) for operation in operations for mode in schemathesis.GenerationMode])
    deadline = time.monotonic() + FUZZ_SECONDS
    seen: list[int] = []

    @settings(max_examples=1000, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def fuzz(case) -> None:
        if time.monotonic() > deadline:
            return
        response = case.call(base_url=ner_service.url, timeout=60)
        seen.append(response.status_code)
        assert response.status_code < 500, (
            f"{case.method} {case.path} {case.body!r:.300} -> {response.status_code} {response.text[:300]}\n{ner_service.log_tail()}"
        )

    fuzz()
    assert len(seen) >= 50 and any(status == 200 for status in seen) and any(400 <= status < 500 for status in seen), sorted(set(seen))


def json_values():
    leaves = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    return st.recursive(
        leaves,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["text", "texts", "x"]), inner, max_size=3),
        max_leaves=8,
    )


UNICODE = st.characters(codec="utf-8")  # every code point JSON can carry: all but lone surrogates
ANY_TEXT = st.text(UNICODE, max_size=300) | st.builds(str.__add__, st.sampled_from(SENTENCES), st.text(UNICODE, max_size=20))


def test_arbitrary_bodies_and_texts_never_get_a_server_error(ner_service):
    """Raw bytes, any JSON and any Unicode text: a 4xx or a well-formed 200, never a 5xx."""
    deadline = time.monotonic() + FUZZ_SECONDS
    http = httpx.Client(base_url=ner_service.url, timeout=60, headers={"Content-Type": "application/json"})

    @settings(max_examples=500, deadline=None, database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(
        path=st.sampled_from(["/tag", "/tag_batch"]),
        body=st.binary(max_size=200) | json_values().map(lambda v: json.dumps(v).encode()),
        text=ANY_TEXT,
    )
    def fuzz(path: str, body: bytes, text: str) -> None:
        if time.monotonic() > deadline:
            return
        response = http.post(path, content=body)
        assert response.status_code < 500, ner_service.explain(response)
        response = http.post("/tag", content=json.dumps({"text": text}))
        assert response.status_code == 200, ner_service.explain(response)
        for entity in response.json()["entities"]:
            assert text[entity["start"] : entity["end"]] == entity["text"]

    with http:
        fuzz()


# ---- access control -----------------------------------------------------------------------------

PROTECTED = [
    ("POST", "/tag", {"json": {"text": "موسكو"}}),
    ("POST", "/tag_batch", {"json": {"texts": ["موسكو"]}}),
    ("GET", "/metadata", {}),
    ("GET", "/ui", {}),
]


@pytest.mark.parametrize(("method", "path", "kwargs"), PROTECTED, ids=[path for _, path, _ in PROTECTED])
def test_with_an_api_key_routes_need_the_bearer_token(ner_service_with_key, method, path, kwargs):
    url = f"{ner_service_with_key.url}{path}"
    for headers in [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": f"Bearer {API_KEY}x"},
    ]:
        response = httpx.request(method, url, headers=headers, **kwargs)
        assert response.status_code == 401, ner_service_with_key.explain(response)
        assert response.headers["WWW-Authenticate"] == "Bearer"
    response = httpx.request(method, url, headers={"Authorization": f"Bearer {API_KEY}"}, **kwargs)
    assert response.status_code == 200, ner_service_with_key.explain(response)


def test_with_an_api_key_health_probes_stay_open(ner_service_with_key):
    for path in ["/healthz", "/readyz"]:
        response = httpx.get(f"{ner_service_with_key.url}{path}")
        assert response.status_code == 200, ner_service_with_key.explain(response)


def test_startup_logs_once_whether_routes_are_open(ner_service, ner_service_with_key):
    assert ner_service.log_path.read_text().count("NER_API_KEY is not set") == 1
    assert "NER_API_KEY is not set" not in ner_service_with_key.log_path.read_text()
    assert API_KEY not in ner_service_with_key.log_path.read_text()


def test_limits_come_from_the_environment(ner_service_with_key):
    """The keyed server runs with NER_MAX_TEXT_CHARS=50 and NER_MAX_BATCH_SIZE=3."""
    http = httpx.Client(base_url=ner_service_with_key.url, headers={"Authorization": f"Bearer {API_KEY}"})
    with http:
        limits = http.get("/metadata").json()
        assert (limits["max_text_chars"], limits["max_batch_texts"]) == (50, 3)
        assert http.post("/tag", json={"text": "ب" * 50}).status_code == 200
        too_long = http.post("/tag", json={"text": "ب" * 51})
        assert too_long.status_code == 413 and "50" in too_long.json()["error"], ner_service_with_key.explain(too_long)
        assert http.post("/tag_batch", json={"texts": ["ب"] * 3}).status_code == 200
        too_many = http.post("/tag_batch", json={"texts": ["ب"] * 4})
        assert too_many.status_code == 413 and "3" in too_many.json()["error"], ner_service_with_key.explain(too_many)


# ---- a worker that dies -----------------------------------------------------------------------


def test_a_worker_killed_is_replaced_and_its_death_logged(tiny_onnx_dir, tmp_path):
    """BentoML restarts a dead worker silently; the service's replacement worker logs the death
    (serving/worker_deaths.py). The killed worker's own connections cannot be answered by anyone
    (README, Known limits); requests after it are served again."""
    import psutil

    death = "ended without shutting down"
    with ServiceProcess(tiny_onnx_dir, tmp_path / "service.log", {"NER_API_KEY": ""}) as server:
        assert death not in server.log_path.read_text()  # a clean start reports nothing
        [worker] = psutil.Process(server.process.pid).children()
        worker.kill()
        worker.wait(10)
        deadline = time.monotonic() + 90
        while death not in server.log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert f"(pid {worker.pid}) {death}" in server.log_path.read_text(), server.log_tail()
        assert tag(server, "زار بوتين موسكو")["entities"] is not None
    assert not list(Path(tempfile.gettempdir()).glob(f"arabic-ner-worker-{server.process.pid}-*")), "a clean shutdown removes its marker"


# ---- startup failures ---------------------------------------------------------------------------


def broken_model_dirs(tiny_onnx_dir: Path, tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model dir, what the startup error must mention)."""
    no_tokenizer = shutil.copytree(tiny_onnx_dir, tmp_path / "no-tokenizer")
    (no_tokenizer / "tokenizer.json").unlink()
    wrong_vocab = shutil.copytree(tiny_onnx_dir, tmp_path / "wrong-vocab")
    config = json.loads((wrong_vocab / "ner_config.json").read_text())
    (wrong_vocab / "ner_config.json").write_text(json.dumps({**config, "vocab_size": config["vocab_size"] + 1}))
    return {
        "missing-dir": (tmp_path / "no-such-model", "no-such-model"),
        "missing-file": (no_tokenizer, "tokenizer.json"),
        "vocab-mismatch": (wrong_vocab, "vocab_size"),
    }


@pytest.mark.parametrize("case", ["missing-dir", "missing-file", "vocab-mismatch"])
def test_startup_with_an_unusable_model_dir_fails_at_once_naming_dir_and_problem(tiny_onnx_dir, tmp_path, case):
    model_dir, problem = broken_model_dirs(tiny_onnx_dir, tmp_path)[case]
    server = ServiceProcess(model_dir, tmp_path / "service.log")
    process = server.start()
    try:
        returncode = process.wait(timeout=60)
    finally:
        server.stop()
    log = server.log_path.read_text()
    assert returncode != 0, log
    assert f"NER_MODEL_DIR={model_dir}" in log and problem in log, log
    assert "Traceback" not in log, log


def test_startup_with_a_malformed_limit_fails_at_once(tiny_onnx_dir, tmp_path):
    server = ServiceProcess(tiny_onnx_dir, tmp_path / "service.log", {"NER_MAX_BATCH_SIZE": "lots"})
    returncode = server.start().wait(timeout=60)
    log = server.log_path.read_text()
    assert returncode != 0 and "NER_MAX_BATCH_SIZE must be a positive integer, got 'lots'" in log, log


# ---- packaging ----------------------------------------------------------------------------------


def test_the_bento_installs_exactly_the_serve_extra():
    bentofile = yaml.safe_load((ROOT / "bentofile.yaml").read_text(encoding="utf-8"))
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert bentofile["python"]["packages"] == pyproject["project"]["optional-dependencies"]["serve"]
    assert bentofile["service"] == "serving.service:NERService"
    assert "models/default/*" in bentofile["include"]


def test_the_serving_package_imports_no_training_stack(tiny_onnx_dir):
    """The Bento installs no torch or transformers: no serving module (the service, the tagger, the
    tag CLI, the core) may need them, nor anything from training/."""
    code = (
        "import importlib, pkgutil, sys, serving\n"
        "for module in pkgutil.iter_modules(serving.__path__): importlib.import_module(f'serving.{module.name}')\n"
        "assert 'serving.tag' in sys.modules and 'serving.service' in sys.modules\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'training'}))"
    )
    env = {**os.environ, "NER_MODEL_DIR": str(tiny_onnx_dir)}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr
