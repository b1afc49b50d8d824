"""Which earlier stages ``training.build_default`` may reuse: a stage is trained again exactly when
something it reads has changed."""

from pathlib import Path

from training.build_default import stage_fingerprint


def _stage(tmp_path: Path) -> tuple[list[str], Path]:
    data = tmp_path / "corpus.jsonl"
    data.write_text('{"id": "d1", "text": "زار الرئيس موسكو", "entities": []}\n', encoding="utf-8")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(f'seed = 13\n\n[[sources]]\nname = "corpus"\npath = "{data}"\nweight = 1.0\ndev_fraction = 0.1\n', encoding="utf-8")
    base = tmp_path / "encoder"
    base.mkdir()
    for name, content in {"config.json": '{"hidden_size": 384}', "tokenizer.json": '{"model": {}}', "model.safetensors": "weights, first pre-training"}.items():
        (base / name).write_text(content, encoding="utf-8")
    return ["--recipe", str(recipe), "--base-model", str(base), "--output", str(tmp_path / "stage1")], base


def test_a_new_pre_training_retrains_the_encoder_stage_but_not_the_random_weights_stage(tmp_path):
    argv, base = _stage(tmp_path)
    from_encoder, from_random = stage_fingerprint(argv, str(base)), stage_fingerprint(argv + ["--random-init"], str(base), random_init=True)
    (base / "model.safetensors").write_text("weights, a longer pre-training", encoding="utf-8")
    assert stage_fingerprint(argv, str(base)) != from_encoder
    assert stage_fingerprint(argv + ["--random-init"], str(base), random_init=True) == from_random


def test_random_weights_stage_is_retrained_when_the_architecture_tokenizer_or_data_change(tmp_path):
    argv, base = _stage(tmp_path)
    random_argv = argv + ["--random-init"]
    before = stage_fingerprint(random_argv, str(base), random_init=True)
    (base / "config.json").write_text('{"hidden_size": 512}', encoding="utf-8")
    after_config = stage_fingerprint(random_argv, str(base), random_init=True)
    (base / "tokenizer.json").write_text('{"model": {"vocab": {}}}', encoding="utf-8")
    after_tokenizer = stage_fingerprint(random_argv, str(base), random_init=True)
    (tmp_path / "corpus.jsonl").write_text('{"id": "d1", "text": "زار الرئيس القاهرة", "entities": []}\n', encoding="utf-8")
    after_data = stage_fingerprint(random_argv, str(base), random_init=True)
    assert len({str(f) for f in (before, after_config, after_tokenizer, after_data)}) == 4


def test_a_hub_id_stands_for_itself(tmp_path):
    argv, _ = _stage(tmp_path)
    fingerprint = stage_fingerprint(argv, "CAMeL-Lab/bert-base-arabic-camelbert-msa")
    assert fingerprint["base_weights"] == "CAMeL-Lab/bert-base-arabic-camelbert-msa"
