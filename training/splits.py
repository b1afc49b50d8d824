"""Write a recipe's document-level dev splits: ``NAME.train.jsonl`` and ``NAME.dev.jsonl`` per source.

    python -m training.splits --recipe training/recipes/default-stage1.toml --output-dir runs/splits

The dev documents are drawn as ``training.dev_splits`` describes (seeded, document-level, text
shared with a dev document kept out of training); ``splits.json`` records the ids and what was left
out and why. Pre-training reads the training parts only.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from serving.annotation import InvalidDataError, atomic_write_text, write_documents

from .dev_splits import SourceSplit, split_record
from .sources import Recipe, RecipeError, load_recipe


def write_splits(recipe: Recipe, output: Path) -> list[SourceSplit]:
    """Carve the recipe's dev splits and write them to ``output`` (raises InvalidDataError on bad data)."""
    splits = recipe.split()
    for split in splits:
        write_documents(output / f"{split.name}.train.jsonl", split.train)
        write_documents(output / f"{split.name}.dev.jsonl", split.dev)
    atomic_write_text(output / "splits.json", json.dumps(split_record(splits, recipe.seed), ensure_ascii=False, indent=2) + "\n")
    return splits


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.splits", description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", required=True, help="recipe TOML listing the sources (see training/recipes/)")
    parser.add_argument("--output-dir", required=True, help="where NAME.train.jsonl, NAME.dev.jsonl and splits.json go")
    args = parser.parse_args(argv)
    output = Path(args.output_dir)
    try:
        splits = write_splits(load_recipe(args.recipe), output)
    except (RecipeError, InvalidDataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for split in splits:
        print(
            f"{split.name}: {len(split.train)} training, {len(split.dev)} dev, {split.held_back_lines} line(s) of {len(split.held_back)} document(s) held back (text shared with dev)",
            file=sys.stderr,
        )
    print(f"wrote {output}/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
