"""The built-in emoji data set: licence-clean emoji art from the npm registry with CLDR names and keywords.

packages.py installs and verifies the pinned packages, catalogue.py joins them into concepts and drawings,
images.py renders and caches them at one resolution, splits.py holds the concepts out and captions the rest.
"""

from .catalogue import STYLES, Catalogue, Concept, Drawing, load_catalogue
from .images import build_cache, load_cache
from .packages import PACKAGES, EmojiDataError, install_packages, require_packages
from .splits import EVAL_SETS, EVAL_TEMPLATES, GENERATION_TEMPLATE, UNSEEN_STYLE, EmojiData

__all__ = [
    "EVAL_SETS",
    "EVAL_TEMPLATES",
    "GENERATION_TEMPLATE",
    "PACKAGES",
    "STYLES",
    "UNSEEN_STYLE",
    "Catalogue",
    "Concept",
    "Drawing",
    "EmojiData",
    "EmojiDataError",
    "build_cache",
    "install_packages",
    "load_cache",
    "load_catalogue",
    "require_packages",
]
