"""The coverage-aware (partial-label) loss: learning from corpora that do not mark all our labels.

Each word's training target is the set of tags it may truly have, A(w), given what its source
annotates (``Document.annotated``) and its gold tag:

* O in a source that annotates every label: {O};
* O in a source that does not annotate label X: {O, B-X, I-X, ...} for every such X (an unmarked
  date in a corpus that never marks dates may be a date);
* B-X or I-X: {B-X} or {I-X};
* B- or I- of a label set, "B-GPE|LOC|FAC" (a native tag merging labels we keep apart): the B- or
  I- tag of each member.

Labels travel to the loss as one integer per sub-word, the bitmask of A(w) over tag ids (bit t set
when tag t is allowed); -100 marks positions the loss skips, as for plain cross-entropy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import Trainer

from serving.schema import ENTITY_LABELS, OUTSIDE, TAG_TO_ID, label_members, split_tag

IGNORED_LABEL = -100  # positions the loss and the metrics skip (torch's CrossEntropyLoss default)
LOSSES = ("partial", "cross-entropy")


def allowed_tags(tag: str, annotated: Sequence[str] = ENTITY_LABELS) -> list[str]:
    """The tags a word with gold ``tag`` may have, in a source annotating ``annotated``.

    >>> allowed_tags("O", ["PERS", "ORG", "GPE", "LOC", "FAC"])
    ['O', 'B-NORP', 'I-NORP', 'B-OCC', 'I-OCC', 'B-EVENT', 'I-EVENT', 'B-DATE', 'I-DATE']
    >>> allowed_tags("I-GPE|LOC|FAC", ["PERS", "ORG", "GPE", "LOC", "FAC"])
    ['I-GPE', 'I-LOC', 'I-FAC']
    >>> allowed_tags("B-PERS")
    ['B-PERS']
    """
    prefix, label = split_tag(tag)
    if label is None:
        return [OUTSIDE] + [f"{p}-{other}" for other in ENTITY_LABELS if other not in annotated for p in "BI"]
    return [f"{prefix}-{member}" for member in label_members(label)]


def allowed_mask(tag: str, annotated: Sequence[str] = ENTITY_LABELS, loss: str = "partial") -> int:
    """The bitmask of ``allowed_tags`` over tag ids. With ``loss="cross-entropy"`` the naive
    reading instead: the tag itself (O is O whatever the source annotates; a label set reads as
    its first member), one bit.

    >>> allowed_mask("O"), allowed_mask("B-PERS"), allowed_mask("O", ENTITY_LABELS[:-1])
    (1, 2, 393217)
    >>> allowed_mask("O", ENTITY_LABELS[:-1], loss="cross-entropy"), allowed_mask("B-GPE|LOC", loss="cross-entropy") == 1 << TAG_TO_ID["B-GPE"]
    (1, True)
    """
    if loss == "cross-entropy":
        prefix, label = split_tag(tag)
        tags = [OUTSIDE if label is None else f"{prefix}-{label_members(label)[0]}"]
    elif loss == "partial":
        tags = allowed_tags(tag, annotated)
    else:
        raise ValueError(f"unknown loss {loss!r} (known: {', '.join(LOSSES)})")
    mask = 0
    for allowed in tags:
        mask |= 1 << TAG_TO_ID[allowed]
    return mask


def partial_label_loss(logits, label_masks, num_items_in_batch=None):
    """Mean (or, given ``num_items_in_batch``, sum / num_items_in_batch) over the labelled
    positions of ``-log sum_{t in A} softmax(logits)_t``; see ``PartialLabelTrainer.compute_loss``."""
    labelled = label_masks != IGNORED_LABEL
    scores = logits[labelled].float()
    bits = torch.bitwise_left_shift(
        torch.ones(scores.shape[-1], dtype=label_masks.dtype, device=label_masks.device),
        torch.arange(scores.shape[-1], device=label_masks.device),
    )
    allowed = (label_masks[labelled].unsqueeze(-1) & bits) != 0
    per_position = torch.logsumexp(scores, dim=-1) - torch.logsumexp(scores.masked_fill(~allowed, float("-inf")), dim=-1)
    if num_items_in_batch is not None:
        return per_position.sum() / num_items_in_batch
    return per_position.mean() if per_position.numel() else scores.sum() * 0.0


class PartialLabelTrainer(Trainer):
    """The Trainer with the coverage-aware loss; labels are allowed-tag bitmasks (``allowed_mask``)."""

    def _get_eval_sampler(self, eval_dataset):
        """Dev windows in dataset order. The Trainer would group them by length like the training
        windows (``train_sampling_strategy="group_by_length"`` applies to both), and the dev
        scores map each window back to its sentence by position."""
        return torch.utils.data.SequentialSampler(eval_dataset) if eval_dataset is not None else None

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Coverage-aware token-classification loss.

        For a labelled sub-word w with logits z (one per tag) and allowed tags A(w):

            loss(w) = -log sum_{t in A(w)} softmax(z)_t = logsumexp(z) - logsumexp(z_t : t in A(w))

        averaged over the labelled sub-words of the batch. With one allowed tag, A(w) = {y}, this is
        exactly cross-entropy, -log softmax(z)_y: on data annotated for all nine labels the loss is
        plain cross-entropy. Where A(w) holds several tags, the model is only asked to put its
        probability somewhere in A(w): an O word of a corpus that never marks dates is free to be a
        date, and what it is comes from the corpora that do mark them.
        """
        label_masks = inputs.pop("labels")
        outputs = model(**inputs)
        # Normalised by the batch's labelled positions, or (when the Trainer counts them across
        # gradient-accumulation steps) by that count, exactly as the Trainer scales its own losses.
        loss = partial_label_loss(outputs.logits, label_masks, num_items_in_batch if self.model_accepts_loss_kwargs else None)
        return (loss, outputs) if return_outputs else loss
