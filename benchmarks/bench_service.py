"""Load benchmark of the NER service: requests/s and p50/p99 latency at 1, 8 and 32 concurrent
clients, for a short text (one sentence) and a long one (a whole seed article), and for an empty
text sent while as many other clients keep the long one queued (it is answered without joining
the queue), as a Markdown table.

    .venv/bin/python -m benchmarks.bench_service --model-dir models/default
    .venv/bin/python -m benchmarks.bench_service --url http://127.0.0.1:3000   # a running service

Without ``--url`` it starts ``bentoml serve serving.service:NERService`` on a free 127.0.0.1 port
and stops it at the end. Traffic goes to 127.0.0.1 only, every loop is bounded (``--requests``
per level, ``--max-seconds`` per level). The client shares the machine with the server, so the
numbers are a floor; run it on a quiet machine. "batch" is the mean number of requests BentoML's
adaptive batching merged into one model call (from /metrics): what lets 8 clients get more
requests/s than 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.service_fixtures import ServiceProcess, same_result  # noqa: E402  (after the path insert)

SEED = sorted((ROOT / "seeds").glob("*.txt"))[0]
BATCH_METRIC = re.compile(r"^ner_batch_requests_(sum|count)(?:\{[^}]*\})? (\S+)$", re.M)


@dataclass
class Level:
    text_kind: str
    clients: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    mean_batch: float

    def row(self) -> str:
        ordered = sorted(self.latencies) or [float("nan")]
        p50 = statistics.median(ordered)
        p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
        rate = len(self.latencies) / self.seconds if self.seconds else 0.0
        return (
            f"| {self.text_kind} | {self.clients} | {self.requests} | {rate:.1f} | {p50 * 1000:.1f} | "
            f"{p99 * 1000:.1f} | {self.mean_batch:.1f} | {self.errors} |"
        )


def sample_texts() -> dict[str, str]:
    article = SEED.read_text(encoding="utf-8")
    paragraph = max(article.split("\n\n"), key=len)
    return {"short": re.split(r"(?<=[.؟!])\s", paragraph.strip())[0], "long": article}


async def batch_counters(client: httpx.AsyncClient) -> tuple[float, float]:
    """(sum, count) of the service's histogram of requests per model call."""
    text = (await client.get("/metrics")).text
    values = {kind: float(value) for kind, value in BATCH_METRIC.findall(text)}
    return values.get("sum", 0.0), values.get("count", 0.0)


async def run_level(
    client: httpx.AsyncClient, text_kind: str, text: str, clients: int, requests: int, max_seconds: float, background: str | None = None
) -> Level:
    """``clients`` clients send ``text``; with ``background``, as many more send that text until
    they are done (only the first clients' requests are timed; "batch" counts both)."""
    expected = (await client.post("/tag", json={"text": text})).json()  # warm-up, and the reference answer
    before = await batch_counters(client)
    latencies: list[float] = []
    errors = 0
    remaining = requests
    deadline = time.monotonic() + max_seconds

    async def background_client() -> None:
        while remaining > 0 and time.monotonic() < deadline:
            await client.post("/tag", json={"text": background})

    async def one_client() -> None:
        nonlocal remaining, errors
        while remaining > 0 and time.monotonic() < deadline:
            remaining -= 1
            started = time.perf_counter()
            try:
                response = await client.post("/tag", json={"text": text})
                ok = response.status_code == 200 and same_result(response.json(), expected)
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one_client() for _ in range(clients)), *(background_client() for _ in range(clients if background else 0)))
    seconds = time.perf_counter() - started
    after = await batch_counters(client)
    calls = after[1] - before[1]
    mean_batch = (after[0] - before[0]) / calls if calls else float("nan")
    return Level(text_kind, clients, len(latencies) + errors, seconds, latencies, errors, mean_batch)


async def benchmark(url: str, concurrency: list[int], requests: int, max_seconds: float, api_key: str | None) -> list[Level]:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    limits = httpx.Limits(max_connections=max(concurrency), max_keepalive_connections=max(concurrency))
    levels = []
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits, timeout=120) as client:
        # Fewest clients first: BentoML's dispatcher learns its batching wait from recent traffic,
        # and keeps waiting longer for a while after heavy load.
        for clients in concurrency:
            for text_kind, text in sample_texts().items():
                # A long text costs ~100 short ones: fewer requests keep each level short.
                count = requests if text_kind == "short" else max(requests // 5, 20)
                levels.append(await run_level(client, text_kind, text, clients, max(count, clients), max_seconds))
                print(levels[-1].row(), file=sys.stderr, flush=True)
            if clients > 1:
                levels.append(
                    await run_level(
                        client, "empty, beside long", "", clients, max(requests, clients), max_seconds, background=sample_texts()["long"]
                    )
                )
                print(levels[-1].row(), file=sys.stderr, flush=True)
    return levels


def table(levels: list[Level], texts: dict[str, str]) -> str:
    lines = [
        f"Texts: short = {len(texts['short'])} characters, long = {len(texts['long'])} characters ({SEED.name}).",
        "",
        "| text | clients | requests | req/s | p50 ms | p99 ms | batch | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(level.row() for level in levels),
    ]
    by_key = {(level.text_kind, level.clients): level for level in levels}
    for kind in texts:
        one, eight = by_key.get((kind, 1)), by_key.get((kind, 8))
        if one and eight and one.latencies and eight.latencies:
            gain = (len(eight.latencies) / eight.seconds) / (len(one.latencies) / one.seconds)
            lines.append(f"\n{kind}: 8 clients get {gain:.2f}x the requests/s of 1 client.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model-dir",
        default=os.environ.get("NER_MODEL_DIR", "models/default"),
        help="model to serve (default: $NER_MODEL_DIR or models/default)",
    )
    parser.add_argument("--url", help="benchmark this running service (127.0.0.1 only) instead of starting one")
    parser.add_argument("--concurrency", default="1,8,32", help="client counts (default: 1,8,32)")
    parser.add_argument(
        "--requests", type=int, default=400, help="requests per level for the short text; a fifth of it for the long one (default: 400)"
    )
    parser.add_argument("--max-seconds", type=float, default=60.0, help="time cap per level (default: 60)")
    parser.add_argument("--api-key", default=os.environ.get("NER_API_KEY"), help="bearer key, if the service needs one")
    args = parser.parse_args(argv)
    concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.url and urlsplit(args.url).hostname not in ("127.0.0.1", "localhost"):
        parser.error("--url must point at 127.0.0.1 or localhost")

    def run(url: str) -> list[Level]:
        return asyncio.run(benchmark(url, concurrency, args.requests, args.max_seconds, args.api_key))

    if args.url:
        levels = run(args.url)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
            env = {"NER_API_KEY": args.api_key or ""}
            with ServiceProcess(Path(args.model_dir).resolve(), Path(tmp) / "service.log", env) as server:
                print(f"service on {server.url}, model {args.model_dir}", file=sys.stderr)
                levels = run(server.url)
    print(table(levels, sample_texts()))
    return 1 if any(level.errors for level in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
