"""python -m serving.bulk on a real local Ray (2 CPUs) with the tiny exported model: every input
format, every kind of bad record, a run killed part-way and resumed, and the entities of Tagger.tag."""

from __future__ import annotations

import doctest
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from serving import Tagger
from serving import bulk as bulk_module
from serving.bulk import main

ROOT = Path(__file__).resolve().parents[1]
SEED_PATHS = sorted((ROOT / "seeds").glob("*.txt"))
SEED_TEXTS = [path.read_text(encoding="utf-8") for path in SEED_PATHS]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    """One Ray for the module's in-process runs (serving.bulk uses a Ray already started)."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def tagger(tiny_onnx_dir) -> Tagger:
    return Tagger.load(tiny_onnx_dir)


def run(model: Path, *args: str) -> int:
    return main([*args, "--model", str(model), "--no-progress"])


def read_rows(output: Path) -> list[dict]:
    if any(output.glob("part-*.jsonl")):
        return [json.loads(line) for path in sorted(output.glob("part-*.jsonl")) for line in path.read_text(encoding="utf-8").splitlines()]
    return pq.read_table(output).to_pylist()


def read_errors(output: Path) -> list[dict]:
    return [
        json.loads(line) for path in sorted((output / "_errors").glob("*.jsonl")) for line in path.read_text(encoding="utf-8").splitlines()
    ]


def assert_tagged_like_tagger(rows: list[dict], texts: dict[str, str], tagger: Tagger, model: Path) -> None:
    """Each row's entities are Tagger.tag's on its text, offsets into the original text."""
    assert [row["id"] for row in rows] == list(texts)
    for row, entities in zip(rows, tagger.tag(list(texts.values())), strict=True):
        text = texts[row["id"]]
        assert all(text[e["start"] : e["end"]] == e["text"] for e in row["entities"])
        assert [(e["text"], e["label"], e["start"], e["end"]) for e in row["entities"]] == [
            (e.text, e.label, e.start, e.end) for e in entities
        ]
        assert [e["score"] for e in row["entities"]] == pytest.approx([e.score for e in entities], abs=1e-4)
        assert (row["model"], row["model_version"]) == (tagger.name, bulk_module.model_version(model))
    assert any(row["entities"] for row in rows)


def test_docstring_examples():
    result = doctest.testmod(bulk_module, raise_on_error=False)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_each_input_format_round_trips_ids_and_offsets(tiny_onnx_dir, tagger, tmp_path, output_format, capsys):
    texts = {f"doc-{i}": text for i, text in enumerate(SEED_TEXTS)}
    jsonl = tmp_path / "news.jsonl"
    # Other field names, a blank line, an integer id: all as the user's archive may have them.
    lines = [json.dumps({"key": i, "body": text}, ensure_ascii=False) for i, text in enumerate(SEED_TEXTS[:3])]
    jsonl.write_text("\n".join(lines[:2]) + "\n\n" + lines[2] + "\n", encoding="utf-8")
    parquet = tmp_path / "news.parquet"
    pq.write_table(pa.table({"key": ["p-a", "p-b", "p-c"], "body": SEED_TEXTS[2:5]}), parquet, row_group_size=2)
    folder = tmp_path / "articles"
    folder.mkdir()
    for path in SEED_PATHS[:2]:
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    output = tmp_path / "out"
    args = [str(jsonl), str(tmp_path / "*.parquet"), str(folder), "--output", str(output), "--format", output_format]
    assert run(tiny_onnx_dir, *args, "--id-field", "key", "--text-field", "body", "--block-size", "2") == 0
    texts = {"0": SEED_TEXTS[0], "1": SEED_TEXTS[1], "2": SEED_TEXTS[2], "p-a": SEED_TEXTS[2], "p-b": SEED_TEXTS[3], "p-c": SEED_TEXTS[4]}
    texts.update({str(folder / path.name): SEED_TEXTS[i] for i, path in enumerate(SEED_PATHS[:2])})
    rows = read_rows(output)
    assert_tagged_like_tagger(rows, texts, tagger, tiny_onnx_dir)
    assert "read 8, tagged 8, errors 0" in capsys.readouterr().err
    assert len(list((output / "_done").iterdir())) == 5 and not read_errors(output)


def test_seed_folder_tags_like_the_tagger(tiny_onnx_dir, tagger, tmp_path):
    """The issue's acceptance run: seeds/ into Parquet, the same entities as /tag (Tagger.tag)."""
    output = tmp_path / "seeds-out"
    assert run(tiny_onnx_dir, "seeds", "--output", str(output)) == 0
    rows = read_rows(output)
    assert_tagged_like_tagger(
        rows, {f"seeds/{path.name}": text for path, text in zip(SEED_PATHS, SEED_TEXTS, strict=True)}, tagger, tiny_onnx_dir
    )


def test_every_bad_record_is_in_the_errors_file(tiny_onnx_dir, tmp_path, capsys):
    good = SEED_TEXTS[0][:300]
    jsonl = tmp_path / "bad.jsonl"
    lines = [
        json.dumps({"id": "ok-1", "text": good}, ensure_ascii=False).encode(),
        json.dumps({"id": "no-text"}).encode(),
        json.dumps({"id": "number", "text": 42}).encode(),
        b'{"id": "latin-1", "text": "caf\xe9"}',
        json.dumps({"id": "long", "text": "x" * 1001}).encode(),
        json.dumps({"id": "ok-1", "text": "again"}).encode(),
        b'{"id": "broken", ',
        json.dumps({"text": good}, ensure_ascii=False).encode(),
        json.dumps({"id": "surrogate", "text": "\ud800"}).encode(),
    ]
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    parquet = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"id": ["p-1", "p-2", "ok-1"], "text": [good, None, good]}), parquet)
    txt = tmp_path / "cp1256.txt"
    txt.write_bytes("زار موسكو".encode("cp1256"))
    output = tmp_path / "out"
    args = [str(jsonl), str(parquet), str(txt), "--output", str(output), "--max-chars", "1000", "--block-size", "4"]
    assert run(tiny_onnx_dir, *args) == 3
    assert "read 13, tagged 2, errors 11" in capsys.readouterr().err
    assert [row["id"] for row in read_rows(output)] == ["ok-1", "p-1"]
    errors = {(e["file"], e["line"] or e["row"]): (e["id"], e["reason"]) for e in read_errors(output)}
    assert errors == {
        (str(jsonl), 2): ("no-text", "missing text field 'text'"),
        (str(jsonl), 3): ("number", "non-string text field 'text' (int)"),
        (str(jsonl), 4): ("latin-1", "invalid UTF-8 at byte 30 of the line"),
        (str(jsonl), 5): ("long", "text over the length limit (1,001 > 1,000 characters)"),
        (str(jsonl), 6): ("ok-1", f"duplicate id (first at {jsonl}:1)"),
        (str(jsonl), 7): (None, "not valid JSON (Expecting property name enclosed in double quotes at column 18)"),
        (str(jsonl), 8): (None, "missing id field 'id'"),
        (str(jsonl), 9): ("surrogate", "invalid UTF-8 at character 0"),
        (str(parquet), 2): ("p-2", "non-string text field 'text' (NoneType)"),
        (str(parquet), 3): ("ok-1", f"duplicate id (first at {jsonl}:1)"),
        (str(txt), None): (str(txt), "invalid UTF-8 at byte 0"),
    }
    # The same command again finds everything done; --allow-errors turns the exit status to 0.
    assert run(tiny_onnx_dir, *args, "--allow-errors") == 0
    assert "resuming: 5 of 5 block(s) already done" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda tmp: [str(tmp / "absent.jsonl"), "--output", str(tmp / "out")], "absent.jsonl: no such file or folder"),
        (lambda tmp: [str(tmp / "*.jsonl"), "--output", str(tmp / "out")], "*.jsonl: no file matches"),
        (lambda tmp: [str(tmp / "in.csv"), "--output", str(tmp / "out")], "in.csv: unknown input kind"),
        (lambda tmp: [str(tmp / "in.txt"), "--output", str(tmp / "busy")], "not empty and not a bulk run"),
        (lambda tmp: [str(tmp / "busy"), "--output", str(tmp / "busy")], "no input file outside the output folder"),
        (lambda tmp: [str(tmp / "in.txt"), "--output", str(tmp / "out"), "--resume"], "nothing to resume"),
        (
            lambda tmp: [str(tmp / "in.txt"), "--output", str(tmp / "out"), "--actors", "3"],
            "3 actor(s) x 1 thread(s) need 3 CPUs; Ray has 2",
        ),
    ],
)
def test_bad_runs_exit_1_naming_the_culprit(tiny_onnx_dir, tmp_path, capsys, make_args, message):
    (tmp_path / "in.txt").write_text("زار موسكو", encoding="utf-8")
    (tmp_path / "in.csv").write_text("id,text\n", encoding="utf-8")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "old.txt").write_text("زار موسكو", encoding="utf-8")
    assert run(tiny_onnx_dir, *make_args(tmp_path)) == 1
    assert message in capsys.readouterr().err


def test_a_run_of_other_inputs_is_not_continued(tiny_onnx_dir, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("زار موسكو", encoding="utf-8")
    output = tmp_path / "out"
    assert run(tiny_onnx_dir, str(source), "--output", str(output)) == 0
    source.write_text("زار موسكو أمس", encoding="utf-8")
    assert run(tiny_onnx_dir, str(source), "--output", str(output)) == 1
    assert "holds a run of other inputs" in capsys.readouterr().err


def write_archive(path: Path, count: int) -> dict[str, str]:
    texts = {f"doc-{i:03d}": SEED_TEXTS[i % len(SEED_TEXTS)] for i in range(count)}
    path.write_text("".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) + "\n" for k, v in texts.items()), encoding="utf-8")
    return texts


def test_a_killed_actor_is_retried_without_duplicating_its_block(tiny_onnx_dir, tagger, tmp_path):
    source = tmp_path / "archive.jsonl"
    texts = write_archive(source, 60)
    output = tmp_path / "out"
    killed = []

    def kill_the_actor_after_its_first_block():
        deadline = time.monotonic() + 120
        while not (markers := list((output / "_done").glob("*.json"))) and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = json.loads(markers[0].read_text(encoding="utf-8"))["pid"]
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_actor_after_its_first_block)
    killer.start()
    assert run(tiny_onnx_dir, str(source), "--output", str(output), "--block-size", "3", "--actors", "1") == 0
    killer.join()
    pids = [json.loads(path.read_text(encoding="utf-8"))["pid"] for path in sorted((output / "_done").glob("*.json"))]
    # Ray restarted the actor and retried its blocks (the first too, when its result was not back yet).
    assert set(pids) - set(killed), "the restarted actor tagged the rest"
    assert_tagged_like_tagger(read_rows(output), texts, tagger, tiny_onnx_dir)


def test_a_killed_run_resumes_without_losing_or_duplicating_a_document(tiny_onnx_dir, tagger, tmp_path, capsys):
    source = tmp_path / "archive.jsonl"
    texts = write_archive(source, 60)
    output = tmp_path / "out"
    args = [
        str(source),
        "--output",
        str(output),
        "--model",
        str(tiny_onnx_dir),
        "--block-size",
        "3",
        "--actors",
        "1",
        "--num-cpus",
        "1",
        "--no-progress",
    ]
    # Its own process group: the kill takes the driver and the Ray it started, as a crash would.
    process = subprocess.Popen(
        [sys.executable, "-m", "serving.bulk", *args], cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while len(list((output / "_done").glob("*.json"))) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(list((output / "_done").glob("*.json")))
    assert 2 <= done < 20, process.stderr.read().decode()
    for path in output.glob("part-*.parquet"):
        pq.read_table(path)  # every published part is whole, done or not
    assert main([*args, "--resume"]) == 0
    assert f"resuming: {done} of 20 block(s) already done" in capsys.readouterr().err
    assert_tagged_like_tagger(read_rows(output), texts, tagger, tiny_onnx_dir)
    assert not list(output.glob("**/.*.tmp"))
