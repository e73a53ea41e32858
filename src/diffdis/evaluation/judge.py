"""Generation accuracy: does a generated image show the prompted class? An independent classifier, trained once
on the real training split and cached, judges each image; its own test accuracy is reported beside the score."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE
from ..data.captions import GENERATION_PROMPT
from ..data.datasets import LabelledImages
from ..data.transforms import uint8_to_model
from ..samplers import DEFAULT_SAMPLER

JUDGE_EPOCHS = 4


class Judge(nn.Module):
    """A small CNN classifier over (N, C, R, R) images in [-1, 1]."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()

        def block(i: int, o: int, stride: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

        self.net = nn.Sequential(
            *block(channels, 32, 1),
            *block(32, 64, 1),
            *block(64, 64, 2),
            *block(64, 128, 2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(0.3),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        """uint8 (N, C, R, R) -> (N,) class indices."""
        self.eval()
        return torch.cat(
            [self(uint8_to_model(images[i : i + batch_size])).argmax(1) for i in range(0, len(images), batch_size)]
        )


def pil_to_uint8(images, channels: int) -> torch.Tensor:
    """Generated PIL images -> (N, C, R, R) uint8."""
    arrays = [np.asarray(im)[None] if channels == 1 else np.asarray(im).transpose(2, 0, 1) for im in images]
    return torch.from_numpy(np.stack(arrays))


def accuracy(judge: Judge, data: LabelledImages) -> float:
    return 100.0 * (judge.predict(data.images) == data.labels).float().mean().item()


def train_judge(train: LabelledImages, epochs: int = JUDGE_EPOCHS, batch_size: int = 128, seed: int = 0) -> Judge:
    torch.manual_seed(seed)
    judge = Judge(train.images.shape[1], len(train.class_names))
    opt = torch.optim.AdamW(judge.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = epochs * -(-len(train) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        judge.train()
        for idx in torch.randperm(len(train), generator=g).split(batch_size):
            loss = F.cross_entropy(judge(uint8_to_model(train.images[idx])), train.labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
    return judge.eval()


def cached_judge(name: str, train: LabelledImages, test: LabelledImages, cache_dir: str | Path) -> tuple[Judge, dict]:
    """The judge for `name` at this resolution and channel count, trained on `train` the first time and read back
    from cache_dir afterwards; the returned record holds its accuracy on `test`."""
    c, r = train.images.shape[1], train.images.shape[-1]
    stem = Path(cache_dir) / f"judge-{name}-{c}x{r}x{r}"
    record_path = stem.with_suffix(".json")
    judge = Judge(c, len(train.class_names))
    if record_path.exists():
        judge.load_state_dict(load_file(stem.with_suffix(".safetensors")))
        return judge.eval(), json.loads(record_path.read_text())
    judge = train_judge(train)
    stem.parent.mkdir(parents=True, exist_ok=True)
    save_file(judge.state_dict(), stem.with_suffix(".safetensors"))
    record = {
        "judge": f"small CNN trained on the real {name} training split ({len(train)} images, {JUDGE_EPOCHS} epochs)",
        "test_accuracy": accuracy(judge, test),
        "test_images": len(test),
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n")
    return judge, record


def score_generations(judge: Judge, images: torch.Tensor, target: torch.Tensor, class_names) -> dict:
    """images (N, C, R, R) uint8 generated for classes `target` (N,) -> percent judged as their class."""
    per = torch.stack([(judge.predict(images[target == k]) == k).float().mean() * 100 for k in range(len(class_names))])
    return {"generation_accuracy": per.mean().item(), "per_class": dict(zip(class_names, per.tolist()))}


def class_samples(
    pipe,
    class_names: Sequence[str],
    per_class: int,
    seed: int = 0,
    num_inference_steps: int = DEFAULT_GENERATION_STEPS,
    guidance_scale: float = DEFAULT_GUIDANCE,
    **options,
) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """`per_class` samples per class, prompted with GENERATION_PROMPT: images (N, C, R, R) uint8, the prompted
    class of each (N,), and the settings that made them (for result files). `options` go to `generate`
    (candidates, self_guidance)."""
    prompts = [GENERATION_PROMPT.format(name) for name in class_names for _ in range(per_class)]
    images = pil_to_uint8(
        pipe.generate(prompts, num_inference_steps, guidance_scale, seed, **options),
        pipe.config.model.image_channels,
    )
    target = torch.arange(len(class_names)).repeat_interleave(per_class)
    settings = {
        "prompt": GENERATION_PROMPT,
        "images": len(prompts),
        **generation_settings(num_inference_steps, guidance_scale, seed, **options),
    }
    return images, target, settings


def generation_settings(num_inference_steps: int, guidance_scale: float, seed: int, **options) -> dict:
    """How samples were drawn, in the words every generation record uses (an option such as `sampler` or
    `candidates` passed to `generate` overrides or adds to the defaults)."""
    return {
        "sampler": DEFAULT_SAMPLER,
        "num_inference_steps": num_inference_steps,
        "guidance_scale": guidance_scale,
        "seed": seed,
        **options,
    }


def generation_accuracy(pipe, judge: Judge, class_names: Sequence[str], per_class: int, **settings) -> dict:
    """Generate `per_class` images per class (class_samples' settings) and score how many the judge assigns to
    the prompted class."""
    images, target, made = class_samples(pipe, class_names, per_class, **settings)
    return {**score_generations(judge, images, target, class_names), **made}
