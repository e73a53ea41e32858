"""Profiles of the training step and both inference paths (torch profiler, top operators by self CPU time),
and the one hotspot fix measured before and after: reusing the query-independent image prefix of the
discrimination pass across text-denoising steps instead of recomputing it every step."""

from __future__ import annotations

import torch
from torch.profiler import ProfilerActivity, profile

from diffdis.data.datasets import fixed_subset
from diffdis.data.eval_sets import load_eval_set
from diffdis.data.transforms import uint8_to_model
from diffdis.diffusion import sample_query
from diffdis.objective import DiffDisObjective

from .common import OUT, interleaved, print_table


def _top(fn, rows: int = 8) -> list[list]:
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [[e.key, e.count, e.self_cpu_time_total / 1000, 100 * e.self_cpu_time_total / total] for e in events[:rows]]


class _NoPrefixReuse:
    """The model as before the fix: `image_prefix` is ignored and recomputed inside every step."""

    def __init__(self, model):
        self.model = model

    def __getattr__(self, name):
        return getattr(self.model, name)

    def image_prefix(self, z):
        return None

    def predict_query(self, z, e_t, t_e, prefix=None):
        return self.model.predict_query(z, e_t, t_e)


def run(pipe) -> dict:
    m = pipe.config.model
    data = fixed_subset(load_eval_set("fashion-mnist", m.resolution, m.image_channels).data, 256)
    images = uint8_to_model(data.images)
    c, e = pipe.text_encoder(["a photo of a bag."] * 64)
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train)

    def train_step():
        pipe.model.train()
        objective.loss(images[:64], c, e, torch.Generator().manual_seed(0))["loss"].backward()
        pipe.model.zero_grad(set_to_none=True)
        pipe.model.eval()

    profiles = {
        "training step (batch 64)": _top(train_step),
        "encode_image (256 images, 2 steps)": _top(lambda: pipe.encode_image(images)),
        "generate (16 prompts, 10 steps)": _top(lambda: pipe.generate(["a photo of a bag."] * 16, 10)),
    }
    lines = []
    for name, rows in profiles.items():
        print_table(f"profile: {name}", ["operator", "calls", "self ms", "%"], rows)
        lines += [name] + [f"  {r[0]:40s} {r[1]:6d} {r[2]:10.1f} ms {r[3]:5.1f}%" for r in rows]
    (OUT / "profile.txt").write_text("\n".join(lines) + "\n")

    z = pipe.autoencoder.encode(images)
    noise = torch.randn(len(z), pipe.model.text_dim, generator=torch.Generator().manual_seed(0))
    fix, rows = {}, []
    with torch.no_grad():
        for steps in (2, 8):
            seconds = interleaved(
                {
                    "prefix reused (now)": lambda s=steps: sample_query(
                        pipe.model, pipe.query, pipe.scheduler, z, noise, s
                    ),
                    "prefix recomputed (before)": lambda s=steps: sample_query(
                        _NoPrefixReuse(pipe.model), pipe.query, pipe.scheduler, z, noise, s
                    ),
                },
                repeats=5,
            )
            speedup = seconds["prefix recomputed (before)"] / seconds["prefix reused (now)"]
            fix[steps] = {**seconds, "speedup": speedup}
            rows.append([steps, *seconds.values(), speedup])
    print_table(
        "query denoising of 256 images: the image prefix reused across steps",
        ["steps", "now s", "before s", "speed-up"],
        rows,
    )
    return {"top_operators": profiles, "prefix_reuse": fix}
