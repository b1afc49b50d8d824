"""Words/s of ``serving.bulk`` (Ray Data) against ``serving.tag`` in one process, on one archive.

    make corpora && .venv/bin/python -m benchmarks.bench_bulk    # models/default, 20,000 documents

The archive: the converted corpora's texts (``runs/corpora/*.jsonl``, from ``make corpora``) cut
into documents of ``--words`` whitespace-separated words, the first ``--documents`` of them, in one
JSONL file. Every run is a whole command in its own process, timed from start to exit (Ray's start
included), on the same cores:

* baseline: ``python -m serving.tag --model M archive.jsonl`` (ONNX Runtime on all cores);
* local Ray: ``python -m serving.bulk`` with 2 actors x 1 thread, then 1 actor x 2 threads;
* a two-node cluster on this machine (``ray start --head --num-cpus 1`` and a second node joining
  it with ``--num-cpus 1``, each with its own temporary folder and ports), the same job through
  ``--address``: which node tagged which blocks (from the done markers), and whether its output
  equals the local run's.

Peak memory per actor is the largest ``peak_rss_mb`` an actor wrote in its done markers. The ratios
are against the baseline measured in the same run, so a busy machine weighs on both sides.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
HEAD_PORT = 26379
# A node's own ports, so two nodes share one machine: (node manager, object manager, first worker port).
NODE_PORTS = {"head": (26380, 26381, 26400), "worker": (26382, 26383, 26500)}
# Ray 2.60's token authentication refused this machine's drivers the head's token (~/.ray/auth_token);
# the benchmark's cluster lives on this machine only, so it runs without.
CLUSTER_ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}


def build_archive(corpora: Path, path: Path, documents: int, words: int) -> int:
    """Write the archive; returns its word count."""
    sources = sorted(corpora.glob("*.jsonl"))
    if not sources:
        raise SystemExit(f"{corpora}: no .jsonl file (run: make corpora)")
    total = 0
    written = 0
    with path.open("w", encoding="utf-8") as out:
        for source in sources:
            for line in source.read_text(encoding="utf-8").splitlines():
                tokens = json.loads(line)["text"].split()
                for first in range(0, len(tokens), words):
                    if written == documents:
                        return total
                    chunk = tokens[first : first + words]
                    out.write(json.dumps({"id": f"{source.stem}-{written:06d}", "text": " ".join(chunk)}, ensure_ascii=False) + "\n")
                    total += len(chunk)
                    written += 1
    raise SystemExit(f"{corpora}: only {written} documents of {words} words, {documents} asked")


def timed(command: list[str], env: dict | None = None) -> float:
    print("$ " + " ".join(command), file=sys.stderr)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def markers(output: Path) -> list[dict]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted((output / "_done").glob("*.json"))]


def peak_mb_per_actor(output: Path) -> str:
    peaks = defaultdict(int)
    for marker in markers(output):
        peaks[marker["actor_id"]] = max(peaks[marker["actor_id"]], marker["peak_rss_mb"])
    return ", ".join(str(peaks[actor]) for actor in sorted(peaks))


def rows(output: Path) -> list[dict]:
    return pq.read_table(output).sort_by("id").select(["id", "entities"]).to_pylist()


def start_node(role: str, temp_dir: Path, log: Path) -> subprocess.Popen:
    """``ray start --block`` in a process group of its own: stopping it stops this node only (``ray stop``
    would stop every Ray on the machine)."""
    node_manager, object_manager, first_worker = NODE_PORTS[role]
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--block",
        "--num-cpus",
        "1",
        "--object-store-memory",
        str(512 << 20),
        "--disable-usage-stats",
    ]
    command += ["--node-ip-address", "127.0.0.1"]  # loopback only
    command += ["--node-manager-port", str(node_manager), "--object-manager-port", str(object_manager)]
    command += ["--min-worker-port", str(first_worker), "--max-worker-port", str(first_worker + 50)]
    if role == "head":
        command += ["--head", "--port", str(HEAD_PORT), "--temp-dir", str(temp_dir), "--include-dashboard", "false"]
    else:
        command += ["--address", f"127.0.0.1:{HEAD_PORT}"]
    print("$ " + " ".join(command), file=sys.stderr)
    return subprocess.Popen(command, cwd=ROOT, env=CLUSTER_ENV, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_nodes(count: int, timeout: float = 120) -> None:
    check = f"import ray; ray.init(address='127.0.0.1:{HEAD_PORT}', log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = subprocess.run([sys.executable, "-c", check], env=CLUSTER_ENV, capture_output=True, text=True)
        if result.returncode == 0 and int(result.stdout.split()[-1]) >= count:
            return
        time.sleep(2)
    raise SystemExit(f"the cluster did not reach {count} nodes in {timeout:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bulk", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--corpora", type=Path, default=ROOT / "runs" / "corpora")
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--words", type=int, default=35, help="words per document")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "arabic-ner-bench-bulk")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]
    shutil.rmtree(args.work_dir, ignore_errors=True)
    args.work_dir.mkdir(parents=True)
    archive = args.work_dir / "archive.jsonl"
    words = build_archive(args.corpora, archive, args.documents, args.words)
    python, model = sys.executable, str(args.model)
    bulk = [python, "-m", "serving.bulk", str(archive), "--model", model, "--no-progress", "--block-size", str(args.documents // 20)]
    table = []  # (run, actors x threads, nodes, seconds, peak MB per actor, blocks per node)

    seconds = timed(
        [python, "-m", "serving.tag", "--model", model, str(archive), "--output", str(args.work_dir / "tag.jsonl"), "--no-progress"]
    )
    baseline_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    table.append(("serving.tag, one process", "1 x 2", 1, seconds, f"{baseline_mb} (the process)", "-"))
    for actors, threads in ((2, 1), (1, 2)):
        output = args.work_dir / f"local-{actors}x{threads}"
        seconds = timed([*bulk, "--output", str(output), "--num-cpus", "2", "--actors", str(actors), "--threads", str(threads)])
        table.append(("serving.bulk, local Ray", f"{actors} x {threads}", 1, seconds, peak_mb_per_actor(output), "-"))

    temp_dir = args.work_dir / "ray-head"
    nodes = [start_node("head", temp_dir, args.work_dir / "head.log")]
    try:
        wait_for_nodes(1)
        nodes.append(start_node("worker", temp_dir, args.work_dir / "worker.log"))
        wait_for_nodes(2)
        cluster = args.work_dir / "cluster"
        seconds = timed([*bulk, "--output", str(cluster), "--address", f"127.0.0.1:{HEAD_PORT}"], env=CLUSTER_ENV)
    finally:
        for node in reversed(nodes):
            os.killpg(node.pid, signal.SIGTERM)
            node.wait(timeout=60)
    per_node = Counter(marker["node_id"] for marker in markers(cluster))
    table.append(
        (
            "serving.bulk, two-node cluster",
            "2 x 1",
            len(per_node),
            seconds,
            peak_mb_per_actor(cluster),
            " / ".join(map(str, per_node.values())),
        )
    )
    equal = rows(cluster) == rows(args.work_dir / "local-2x1")

    baseline = words / table[0][3]
    print(
        f"\n{args.documents:,} documents, {words:,} words ({args.words}-word pieces of {args.corpora.name}/*.jsonl); model {args.model.name}; {os.cpu_count()} cores; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after\n"
    )
    print("| run | actors x threads | nodes | wall s | words/s | vs serving.tag | peak MB per actor | blocks per node |")
    print("|---|---|---|---|---|---|---|---|")
    for run, shape, node_count, seconds, memory, blocks in table:
        print(
            f"| {run} | {shape} | {node_count} | {seconds:.1f} | {words / seconds:,.0f} | {words / seconds / baseline:.2f}x | {memory} | {blocks} |"
        )
    print(f"\ncluster output equals the local run's: {equal}; both nodes took blocks: {len(per_node) == 2}")
    return 0 if equal and len(per_node) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
