"""Which earlier stages ``training.build_default`` may reuse: a stage is trained again exactly when
something it reads has changed; and the card's agreement table of sources that annotate the same
dev lines; the card's label decisions."""

import json
from pathlib import Path

from serving.annotation import Document, read_documents, write_documents
from serving.spans import Span
from training.build_default import dev_agreement, stage_fingerprint, stage_job
from training.modelcard import MAP_DECISIONS, label_decisions, pull_tables
from training.train import CrossValidation


def _stage(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "corpus.jsonl"
    data.write_text('{"id": "d1", "text": "زار الرئيس موسكو", "entities": []}\n', encoding="utf-8")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f'seed = 13\n\n[[sources]]\nname = "corpus"\npath = "{data}"\nweight = 1.0\ndev_fraction = 0.1\n\n[training]\nepochs = 2\n',
        encoding="utf-8",
    )
    base = tmp_path / "encoder"
    base.mkdir()
    for name, content in {
        "config.json": '{"hidden_size": 384}',
        "tokenizer.json": '{"model": {}}',
        "model.safetensors": "weights, first pre-training",
    }.items():
        (base / name).write_text(content, encoding="utf-8")
    return recipe, base


def _fingerprint(recipe: Path, base: str, random_init: bool = False) -> dict:
    return stage_fingerprint(stage_job(str(recipe), base, recipe.parent / "stage1", "stage1", random_init=random_init))


def test_a_new_pre_training_retrains_the_encoder_stage_but_not_the_random_weights_stage(tmp_path):
    recipe, base = _stage(tmp_path)
    from_encoder, from_random = _fingerprint(recipe, str(base)), _fingerprint(recipe, str(base), random_init=True)
    (base / "model.safetensors").write_text("weights, a longer pre-training", encoding="utf-8")
    assert _fingerprint(recipe, str(base)) != from_encoder
    assert _fingerprint(recipe, str(base), random_init=True) == from_random


def test_random_weights_stage_is_retrained_when_the_architecture_tokenizer_data_or_settings_change(tmp_path):
    recipe, base = _stage(tmp_path)
    before = _fingerprint(recipe, str(base), random_init=True)
    (base / "config.json").write_text('{"hidden_size": 512}', encoding="utf-8")
    after_config = _fingerprint(recipe, str(base), random_init=True)
    (base / "tokenizer.json").write_text('{"model": {"vocab": {}}}', encoding="utf-8")
    after_tokenizer = _fingerprint(recipe, str(base), random_init=True)
    (tmp_path / "corpus.jsonl").write_text('{"id": "d1", "text": "زار الرئيس القاهرة", "entities": []}\n', encoding="utf-8")
    after_data = _fingerprint(recipe, str(base), random_init=True)
    recipe.write_text(recipe.read_text(encoding="utf-8").replace("epochs = 2", "epochs = 3"), encoding="utf-8")
    after_settings = _fingerprint(recipe, str(base), random_init=True)
    assert len({str(f) for f in (before, after_config, after_tokenizer, after_data, after_settings)}) == 5
    assert after_settings["settings"]["epochs"] == 3.0


def test_a_hub_id_stands_for_itself(tmp_path):
    recipe, _ = _stage(tmp_path)
    assert _fingerprint(recipe, "CAMeL-Lab/bert-base-arabic-camelbert-msa")["base_weights"] == "CAMeL-Lab/bert-base-arabic-camelbert-msa"


def test_the_card_sets_the_model_beside_how_far_two_annotations_of_the_same_dev_lines_agree(tmp_path):
    line = "وقال مسؤول في الجيش اللبناني إن الأمم المتحدة سترسل قوة إلى بيروت ."

    def marked(mentions):
        return [Span(line.index(m), line.index(m) + len(m), label, m) for m, label in mentions]

    coarse, fine, other = tmp_path / "coarse.jsonl", tmp_path / "fine.jsonl", tmp_path / "other.jsonl"
    # The coarse corpus leaves the army unmarked; the fine one marks it and reads Beirut as a GPE.
    write_documents(
        coarse,
        [
            Document(
                "c-dev", line, marked([("الأمم المتحدة", "ORG"), ("بيروت", "GPE|LOC|FAC")]), annotated=("PERS", "ORG", "GPE", "LOC", "FAC")
            ),
            Document("c-train", "خبر آخر لا يتكرر .", []),
        ],
    )
    write_documents(
        fine,
        [
            Document(
                "f-dev",
                line.replace("إن", "ان"),
                marked([("الجيش اللبناني", "ORG"), ("الأمم المتحدة", "ORG"), ("بيروت", "GPE")]),
                annotated=("PERS", "ORG", "GPE", "LOC", "FAC"),
            )
        ],
    )
    write_documents(other, [Document("o-dev", "نص مختلف تماما .", [])])
    metrics = {
        "data": {
            "sources": [{"name": "coarse", "path": str(coarse)}, {"name": "fine", "path": str(fine)}, {"name": "other", "path": str(other)}]
        },
        "splits": {"sources": {"coarse": {"dev_ids": ["c-dev"]}, "fine": {"dev_ids": ["f-dev"]}, "other": {"dev_ids": ["o-dev"]}}},
    }
    pairs = dev_agreement(metrics)
    assert [(p["first"], p["second"], p["lines"]) for p in pairs] == [("coarse", "fine", 1)]
    assert pairs[0]["labels"]["ORG"] == {"matched": 1, "only_first": 0, "only_second": 1, "f1": 2 / 3}
    assert pairs[0]["labels"]["GPE|LOC|FAC"]["matched"] == 1

    per_label = {"coarse": {"ORG": 0.5, "GPE|LOC|FAC": 0.9}, "fine": {"ORG": 0.4, "GPE": 0.8}}
    seeds = {"micro avg": {"f1-score": 0.7, "support": 3}}
    pull = {
        "seeds": {"stage1": seeds, "stage2_cv": seeds},
        "title_led_pers": {"stage1": [0, 1], "stage2_cv": [0, 1]},
        "dev": {"stage1": per_label, "stage2": per_label},
        "dev_agreement": json.loads(json.dumps(pairs)),
    }
    table = pull_tables(pull)
    assert "coarse and fine annotate the same 1 dev lines" in table
    assert "| ORG | 1 | 0 | 1 | 0.667 | 0.500 | 0.400 |" in table
    assert "| GPE\\|LOC\\|FAC | 1 | 0 | 0 | 1.000 | 0.900 | 0.800 |" in table


def test_the_card_names_the_sources_whose_o_words_may_be_a_label_they_mark():
    freed = {"data": {"sources": [{"name": "coarse", "o_may_be": ["ORG"]}, {"name": "fine", "o_may_be": []}, {"name": "old-record"}]}}
    decisions = label_decisions(freed)
    assert decisions.startswith(MAP_DECISIONS)
    added = decisions.removeprefix(MAP_DECISIONS).strip().splitlines()
    assert len(added) == 1 and added[0].startswith("- coarse marks ORG, but when training a word it leaves O may still be ORG")
    assert label_decisions({"data": {"sources": [{"name": "fine", "o_may_be": []}]}}) == MAP_DECISIONS


def test_each_kind_of_base_takes_its_schedule(tmp_path):
    from training.build_default import STAGE1_RECIPE, STAGE2_RECIPE, base_family

    _, small = _stage(tmp_path)
    sentencepiece = tmp_path / "e5"
    sentencepiece.mkdir()
    (sentencepiece / "config.json").write_text('{"hidden_size": 384}', encoding="utf-8")
    (sentencepiece / "tokenizer.json").write_text('{"model": {"type": "Unigram", "vocab": []}}', encoding="utf-8")
    hub = "CAMeL-Lab/bert-base-arabic-camelbert-msa"
    assert [base_family(str(b)) for b in (small, sentencepiece, hub)] == ["small", "sentencepiece", "base-sized"]
    e5 = stage_job(STAGE1_RECIPE, str(sentencepiece), tmp_path / "out", "stage1")
    assert (e5.settings.learning_rate, e5.settings.epochs, e5.settings.batch_size) == (1e-4, 6.0, 32)
    assert e5.argv[-6:] == ("--learning-rate", "0.0001", "--epochs", "6.0", "--early-stopping-patience", "6")
    own = stage_job(STAGE1_RECIPE, str(small), tmp_path / "out", "stage1")
    assert (own.settings.learning_rate, own.settings.epochs, own.settings.batch_size) == (5e-4, 8.0, 32)  # the recipe's table
    assert "--learning-rate" not in own.argv
    stage2 = stage_job(STAGE2_RECIPE, hub, tmp_path / "out", "stage2", cv=True)
    assert (stage2.settings.learning_rate, stage2.cv, stage2.argv[-2:]) == (2e-5, CrossValidation("seeds"), ("--cv-source", "seeds"))


def test_a_build_job_runs_the_encoder_arm_first_then_the_compared_bases():
    from training.build_default import Arm, BuildJob

    job = BuildJob("models/arabic-bert-small", compare=("none", "models/other"))
    assert job.arms == [
        Arm("encoder", "models/arabic-bert-small"),
        Arm("no-pretraining", "models/arabic-bert-small", random_init=True),
        Arm("base-2", "models/other"),
    ]
    assert BuildJob("models/arabic-bert-small").arms == [Arm("encoder", "models/arabic-bert-small")]


def test_the_card_gets_the_probe_scored_by_the_serving_runtime(tiny_onnx_dir, tmp_path):
    import shutil

    from training.build_default import PROBE, REPO_ROOT, add_probe_section

    model = tmp_path / "model"
    shutil.copytree(tiny_onnx_dir, model)
    add_probe_section(model)
    card = (model / "README.md").read_text(encoding="utf-8")
    section = card.split("## Short texts: the probe", 1)[1]
    scores, failures = section.split("Where it fails: ", 1)  # a tiny untrained model gets texts wrong
    assert f"`{PROBE}`" in scores and "| **all** |" in scores
    supports = [
        int(row.rsplit("|", 2)[1]) for row in scores.splitlines() if row.startswith("| ") and not row.startswith(("| label", "| **all**"))
    ]
    assert sum(supports) == 550
    wrong = int(failures.split(" of the 271 texts", 1)[0])
    rows = [row.split(" | ") for row in failures.splitlines() if row.startswith("| ") and not row.startswith("| text |")]
    assert 1 <= wrong <= 271 and len(rows) == min(wrong, 15)
    gold = {d.text: d for d in read_documents(REPO_ROOT / PROBE)}
    for text, annotated, tagged in rows:
        assert annotated != tagged.removesuffix(" |")
        document = gold[text.removeprefix("| ")]
        assert annotated == (", ".join(f"{span.label} «{span.text}»" for span in document.spans) or "nothing")


def test_a_stage_trains_through_the_training_function_and_is_reused_when_nothing_changed(tiny_model_dir, tmp_path, capsys):
    import shlex

    from tests.fixtures_training import SEEDS
    from training.build_default import STAGE_RECORD, train_stage

    recipe = tmp_path / "recipe.toml"
    recipe.write_text(
        f'seed = 13\n\n[[sources]]\nname = "seeds"\npath = "{SEEDS}"\ndev_fraction = 0.2\n\n[training]\nepochs = 1\nbatch_size = 8\n',
        encoding="utf-8",
    )
    job = stage_job(str(recipe), str(tiny_model_dir), tmp_path / "stage", "stage1")
    metrics = train_stage(job)
    assert metrics["hyperparameters"]["epochs"] == 1.0 and metrics["hyperparameters"]["batch_size"] == 8
    assert metrics["command"] == "python -m training.train " + shlex.join(job.argv)
    assert (tmp_path / "stage" / STAGE_RECORD).is_file() and (tmp_path / "stage" / "model.safetensors").is_file()
    again = train_stage(stage_job(str(recipe), str(tiny_model_dir), tmp_path / "stage", "stage1"))
    assert "== reusing" in capsys.readouterr().err and again["dev"] == metrics["dev"]
