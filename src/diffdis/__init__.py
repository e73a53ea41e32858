"""diffdis: one diffusion model that generates images from text and discriminates images against text."""

from .config import Config, ConfigError, preset
from .pipeline import DiffDisPipeline

__all__ = ["Config", "ConfigError", "DiffDisPipeline", "preset"]
__version__ = "0.1.0"
