"""The samplers, registered by name: which streams each serves and how it is built over the training schedule.

Adding one is one `register_sampler` call: the command line's choices, the web app's menu, the pipeline's checks
and both sampling loops (diffusion.py) read this registry. diffusers is imported only when a sampler is built, so
the command line can offer the names without loading it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DEFAULT_SAMPLER = "ddim"
STREAMS = ("image", "query")

# (training DDPMScheduler, prediction type, clip_sample) -> (a fresh scheduler, the keyword arguments its `step`
# needs)
Build = Callable[..., tuple[object, dict]]


@dataclass(frozen=True)
class Sampler:
    build: Build | None  # None: no scheduler at all, one read-out of the head's estimate at t = T-1 (query only)
    streams: tuple[str, ...]  # which of STREAMS it samples
    description: str  # for help texts


def _ddim(base, prediction_type: str, clip_sample: bool = False):
    """Trailing spacing, so that step 1 starts at t = T-1 (pure noise). With `clip_sample` (pixel space) the
    predicted x0 is kept in [-1, 1] and the noise estimate re-derived from it: at t near T the ε -> x0 conversion
    divides by sqrt(ᾱ_T) (about 0.006 for the linear schedule), and unclipped or half-clipped estimates there make
    deterministic samplers diverge or ignore the prompt."""
    from diffusers import DDIMScheduler

    scheduler = DDIMScheduler.from_config(
        base.config,
        prediction_type=prediction_type,
        clip_sample=clip_sample,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    return scheduler, {"use_clipped_model_output": clip_sample}


def _dpm(base, prediction_type: str, clip_sample: bool = False):
    """DPM-Solver++ (multistep), trailing spacing, thresholded to [-1, 1] in pixel space."""
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler.from_config(
        base.config,
        prediction_type=prediction_type,
        algorithm_type="dpmsolver++",
        thresholding=clip_sample,
        sample_max_value=1.0,
        timestep_spacing="trailing",
        final_sigmas_type="zero",
    )
    return scheduler, {}


SAMPLERS: dict[str, Sampler] = {
    "ddim": Sampler(_ddim, STREAMS, "DDIM"),
    "dpm": Sampler(_dpm, STREAMS, "DPM-Solver++"),
    "x0": Sampler(None, ("query",), "one evaluation: the head's clean-query estimate read out at t = T-1"),
}


def register_sampler(name: str, sampler: Sampler) -> None:
    """Offer a new sampler everywhere (command line, app, pipeline) under `name`."""
    if name in SAMPLERS:
        raise ValueError(f"a sampler named {name!r} is registered already; choose another name")
    if not sampler.streams or set(sampler.streams) - set(STREAMS):
        raise ValueError(f"sampler {name!r}: streams={sampler.streams!r}; give some of {STREAMS}")
    if sampler.build is None and "image" in sampler.streams:
        raise ValueError(f"sampler {name!r}: an image sampler needs a `build`")
    SAMPLERS[name] = sampler


def sampler_names(stream: str) -> tuple[str, ...]:
    """The names registered for `stream` ("image" or "query")."""
    return tuple(name for name, s in SAMPLERS.items() if stream in s.streams)


def sampler_for(name: str, stream: str) -> Sampler:
    """The registered sampler `name`, refused with the choices when it does not sample `stream`."""
    found = SAMPLERS.get(name)
    if found is None or stream not in found.streams:
        raise ValueError(f"unknown {stream} sampler {name!r}; available: {', '.join(sampler_names(stream))}")
    return found
