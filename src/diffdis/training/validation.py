"""In-training validation: seen-class accuracy on the held-out validation images and a grid of samples.

The validation set is never a test split (config.py refuses those names): by default it is the images held out
of the training split; `train.val_data` may name a folder or an IDX pair of the user's own.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.captions import GENERATION_PROMPT
from ..data.datasets import LabelledImages
from ..evaluation.zero_shot import zero_shot
from ..pipeline import DiffDisPipeline
from ..utils.images import image_grid

SAMPLES_PER_ROW = 8
SAMPLE_STEPS = 25  # fewer than generation's default: a progress picture, not a result


@torch.no_grad()
def validation_record(
    pipe: DiffDisPipeline,
    val_set: LabelledImages | None,
    prompts: list[str],
    images: int,
    query_steps: int,
    samples_dir: Path | None,
    step: int,
    sample_rows: int = 10,
) -> dict:
    """Accuracy on the first `images` validation images against the validation set's class names, and a grid
    of samples written to samples_dir/step_NNNNNNN.png: one row per class, or, without a labelled set, one row
    per prompt (the first training captions of the run), at most `sample_rows` rows (0: no grid). With
    `samples_dir` None the grid is drawn and not written (the other processes of a sharded run)."""
    pipe.model.eval()
    record: dict = {"step": step}
    if pipe.can_discriminate and val_set is not None:
        subset = val_set.subset(torch.arange(min(images, len(val_set))))
        result = zero_shot(pipe, subset, num_inference_steps=query_steps, seed=0)
        record.update(val_top1=result.accuracy, val_images=len(subset), val_steps=query_steps)
    if pipe.can_generate and sample_rows > 0:
        labels = [GENERATION_PROMPT.format(n) for n in val_set.class_names] if val_set is not None else prompts
        labels = labels[:sample_rows]
        samples = pipe.generate([p for p in labels for _ in range(SAMPLES_PER_ROW)], SAMPLE_STEPS, seed=0)
        rows = [samples[i * SAMPLES_PER_ROW : (i + 1) * SAMPLES_PER_ROW] for i in range(len(labels))]
        if samples_dir is not None:
            samples_dir.mkdir(parents=True, exist_ok=True)
            image_grid(rows, labels).save(samples_dir / f"step_{step:07d}.png")
    return record
