"""Leave-one-article-out cross-validation.

Fold k trains on every article but the k-th and tags the k-th with ``training.predict.WordPredictor``
(the serving decision). Each article is thus tagged by the one model that never saw it; the
predictions are pooled into one seqeval classification report, and each fold's own entity F1 is
reported with their mean and standard deviation (sample std, n - 1; 0 for a single fold).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from serving.annotation import Document

from .predict import WordPredictor
from .scoring import entity_report, entity_scores, gold_tags, report_text

# Trains on the given documents (fold number given for naming work directories); returns an object
# with .model, .tokenizer and .is_main_process, such as training.train.TrainedModel.
FitFunction = Callable[[Sequence[Document], int], object]


def fold_plan(documents: Sequence[Document], folds: int | None = None) -> list[tuple[list[Document], Document]]:
    """(training documents, held-out document) for each fold, in file order; ``folds`` keeps the first K.

    >>> [(len(train), held.id) for train, held in fold_plan([Document("a", ""), Document("b", ""), Document("c", "")], folds=2)]
    [(2, 'a'), (2, 'b')]
    """
    if len(documents) < 2:
        raise ValueError(f"cross-validation needs at least 2 documents, got {len(documents)}")
    plan = [([d for d in documents if d is not held], held) for held in documents]
    return plan[:folds] if folds else plan


def summarise(document_ids: Sequence[str], gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Per-fold F1, their mean ± std, and the pooled report over all held-out articles.

    >>> summary = summarise(["a", "b"], [["B-GPE"], ["B-PERS"]], [["B-GPE"], ["O"]])
    >>> [f["f1"] for f in summary["folds"]], summary["mean_f1"], summary["pooled"]["micro avg"]["f1-score"], summary["folds"][1]["predicted_tags"]
    ([1.0, 0.0], 0.5, 0.6666666666666666, ['O'])
    """
    folds = []
    for document_id, gold_sequence, predicted_sequence in zip(document_ids, gold, predicted, strict=True):
        scores = entity_scores([gold_sequence], [predicted_sequence])
        # The held-out predictions are kept: they are the only honest ones for error analysis.
        folds.append(
            {
                "document_id": document_id,
                **scores,
                "support": sum(t.startswith("B-") for t in gold_sequence),
                "predicted_tags": list(predicted_sequence),
            }
        )
    f1s = [fold["f1"] for fold in folds]
    return {
        "folds": folds,
        "mean_f1": statistics.fmean(f1s),
        "std_f1": statistics.stdev(f1s) if len(f1s) > 1 else 0.0,
        "pooled": entity_report(gold, predicted),
    }


def cross_validate(
    documents: Sequence[Document], fit: FitFunction, folds: int | None = None, log: Callable[[str], None] = print
) -> dict | None:
    """Run the folds; returns the summary (see ``summarise``) on the main process, None elsewhere."""
    plan = fold_plan(documents, folds)
    ids, gold, predicted = [], [], []
    is_main = True
    for k, (train_documents, held_out) in enumerate(plan):
        log(f"cross-validation fold {k + 1}/{len(plan)}: holding out {held_out.id}")
        trained = fit(train_documents, k)
        is_main = trained.is_main_process
        ((_, tags),) = WordPredictor(trained.model, trained.tokenizer, batch_size=32).predict([held_out.text])
        ids.append(held_out.id)
        gold.append(gold_tags(held_out))
        predicted.append(tags)
        log(f"fold {k + 1}: {held_out.id} entity F1 {entity_scores([gold[-1]], [tags])['f1']:.3f}")
    if not is_main:
        return None
    summary = summarise(ids, gold, predicted)
    log(f"cross-validation, {len(plan)} held-out article(s) pooled:\n{report_text(gold, predicted)}")
    log(f"per-article entity F1: mean {summary['mean_f1']:.3f} ± {summary['std_f1']:.3f} (sample std)")
    return summary
