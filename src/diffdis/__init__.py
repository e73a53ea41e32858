"""diffdis: one diffusion model that generates images from text and discriminates images against text."""

from .config import Config, ConfigError, preset
from .pretrained import list_pretrained

__all__ = ["Config", "ConfigError", "DiffDisPipeline", "list_pretrained", "preset"]
__version__ = "0.1.0"


def __getattr__(name: str):
    # The pipeline pulls in torch and diffusers (seconds); import it on first use, so that `diffdis --help`
    # and config-only work start at once.
    if name == "DiffDisPipeline":
        from .pipeline import DiffDisPipeline

        return DiffDisPipeline
    raise AttributeError(f"module 'diffdis' has no attribute {name!r}")
