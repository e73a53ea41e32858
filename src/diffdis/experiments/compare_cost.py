"""The classification paths' cost in the comparison study: the fashion block's seed-0 models loaded and timed in
one process, the contenders alternating (a busy machine slows all alike), median and range over rounds."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data.datasets import fixed_subset
from ..data.eval_sets import load_eval_set
from ..data.transforms import uint8_to_model
from ..evaluation.diffusion_classifier import diffusion_classifier_scores, spaced_timesteps
from ..pipeline import DiffDisPipeline
from ..utils.timing import alternating_times, per_item


@torch.no_grad()
def alternating_costs(
    out: Path, rows: dict[str, dict[int, dict]], models: tuple[str, ...], rounds: int, images: int
) -> dict:
    """Milliseconds per image of each classification path (the query, the Diffusion Classifier at 8 and 32
    timesteps) of the fashion block's seed-0 models among `models`; {} when their model folders are absent."""
    contenders = {}  # name -> (pipe, what to time)
    for model in models:
        record = rows.get(model, {}).get(0)
        model_dir = out / record["model_dir"] if record else None  # relative to the study folder
        if model_dir is None or not model_dir.exists():  # results of record travel without their models
            continue
        pipe = DiffDisPipeline.from_pretrained(model_dir)
        if "query" in record:
            query = {k: record["query"][k] for k in ("num_inference_steps", "guidance_scale")}
            contenders[f"{model} query"] = (pipe, query)
        if pipe.can_generate:
            for n in (8, 32):
                contenders[f"{model} + DC-{n}"] = (pipe, spaced_timesteps(n))
    if not contenders:
        return {}
    config = next(iter(contenders.values()))[0].config
    test_set = load_eval_set(
        "fashion-mnist", config.model.resolution, config.model.image_channels, config.train.data_dir
    )
    test = uint8_to_model(fixed_subset(test_set.data, images).images)
    few = test[: max(1, len(test) // 16)]  # the Diffusion Classifier is timed on fewer images
    names, templates = test_set.data.class_names, test_set.templates

    def timed(pipe, what, query: bool):
        if query:
            return lambda: pipe.encode_image(test, **what)
        return lambda: diffusion_classifier_scores(pipe, few, names, templates, what)

    seconds = alternating_times(
        {name: timed(pipe, what, "query" in name) for name, (pipe, what) in contenders.items()}, rounds, warmup=0
    )
    costs = {
        name: per_item(t, len(test if "query" in name else few), 1000, "median_ms_per_image")
        for name, t in seconds.items()
    }
    costs["how"] = (
        f"{rounds} alternating rounds; {len(test)} test images per query path, {len(few)} per Diffusion Classifier"
    )
    return costs
