"""The emoji catalogue: which concepts there are, what they are called, and which drawing of each style
depicts them. Built from the installed packages (packages.py); nothing here renders.

- A concept is one emoji of emoji-datasource's list, keyed by its code points in upper-case hex without FE0F
  (the packages differ in whether they keep it). Its CLDR name ("red apple") and keywords come from
  OpenMoji's openmoji.json (`annotation`, `tags`; OpenMoji's own `openmoji_tags` are not CLDR and are not used).
- Kept: the "core" concepts. Dropped, and counted: components, flags, keycaps, gendered ZWJ variants (a man or
  woman version of a gender-neutral concept, e.g. "woman technologist" beside "technologist"), and names with a
  comma: the ZWJ families ("family: adult, adult, child"), whose names enumerate their members and which look
  alike at 16-32 px; a label with a comma could also not be typed in a comma-separated list of labels. The
  single-code-point "family", "kiss" and "couple with heart" stay.
- Skin tones: each single-tone variant is a further drawing of its base concept, captioned with its own CLDR
  name ("waving hand: medium skin tone"). Mixed-tone variants (two people, two tones) are not used.
- Styles: Google (Noto) and Twitter (Twemoji) from emoji-datasource's 64-px PNGs, OpenMoji colour SVGs,
  Fluent flat SVGs (found by the kebab-case CLDR name, with an alias table for names Fluent spells otherwise).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .packages import FLUENT, GOOGLE, METADATA, OPENMOJI, TWITTER, EmojiDataError, package_dir, require_packages

STYLES = ("google", "twitter", "fluent", "openmoji")
SKIN_TONES = {
    "1F3FB": ("light skin tone", "light"),
    "1F3FC": ("medium-light skin tone", "medium-light"),
    "1F3FD": ("medium skin tone", "medium"),
    "1F3FE": ("medium-dark skin tone", "medium-dark"),
    "1F3FF": ("dark skin tone", "dark"),
}  # code point -> (CLDR suffix, Fluent file suffix)
FLUENT_ALIASES = {  # CLDR name -> Fluent file stem, where Fluent names the drawing otherwise
    "phoenix": "phoenix-bird",
    "black bird": "blackbird",
    "red triangle pointed up": "red-triangle",
    "enraged face": "pouting-face",
    "stuffed flatbread": "flatbread",
    "deaf person": "person-deaf",
    "people wrestling": "person-wrestling",
    "person: blond hair": "person-blonde-hair",
    "mage": "person-mage",
    "fairy": "person-fairy",
    "vampire": "person-vampire",
    "merperson": "person-merpeople",
    "elf": "person-elf",
    "genie": "person-genie",
    "zombie": "person-zombie",
    "superhero": "person-superhero",
}
DROPPED_CATEGORIES = ("Component", "Flags")


@dataclass(frozen=True)
class Concept:
    key: str  # code points, upper-case hex without FE0F, joined by "-"
    name: str  # CLDR short name
    keywords: tuple[str, ...]  # CLDR keywords, the name's own words excluded
    category: str
    subcategory: str


@dataclass(frozen=True)
class Drawing:
    concept: int  # index into Catalogue.concepts
    style: str
    tone: str  # "" for the default drawing, else the CLDR skin-tone suffix
    path: str  # the PNG or SVG file


@dataclass(frozen=True)
class Catalogue:
    concepts: tuple[Concept, ...]
    drawings: tuple[Drawing, ...]
    dropped: dict[str, int]  # reason -> count of emoji-datasource entries not used

    def drawing_name(self, drawing: Drawing) -> str:
        """The drawing's own CLDR name: its concept's, with the skin tone."""
        name = self.concepts[drawing.concept].name
        return f"{name}: {drawing.tone}" if drawing.tone else name


def emoji_key(hexcode: str) -> str:
    return "-".join(p for p in hexcode.upper().split("-") if p and p != "FE0F")


def kebab(name: str) -> str:
    """CLDR name -> Fluent file stem: accents and apostrophes dropped, every other run of symbols a hyphen."""
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", re.sub(r"['’]", "", plain.lower())).strip("-")


def _drop_reason(entry: dict) -> str | None:
    points = entry["unified"].split("-")
    if entry["category"] in DROPPED_CATEGORIES:
        return entry["category"].lower()
    if entry["subcategory"] == "keycap":
        return "keycap"
    if "200D" in points and ({"2640", "2642"} & set(points) or points[0] in ("1F468", "1F469")):
        return "gendered ZWJ variant"
    return None


def load_catalogue(root: str | Path | None = None) -> Catalogue:
    """Every core concept and every drawing of it in the four styles, in a fixed order (by sort order)."""
    require_packages(root)
    meta = json.loads((package_dir(METADATA, root) / "package" / "emoji.json").read_text())
    names = {
        emoji_key(o["hexcode"]): o
        for o in json.loads((package_dir(OPENMOJI, root) / "package" / "data" / "openmoji.json").read_text())
    }
    fluent_dir = package_dir(FLUENT, root) / "package" / "icons" / "flat"
    fluent = {p.stem for p in fluent_dir.glob("*.svg")}
    dirs = {
        "google": package_dir(GOOGLE, root) / "package" / "img" / "google" / "64",
        "twitter": package_dir(TWITTER, root) / "package" / "img" / "twitter" / "64",
        "openmoji": package_dir(OPENMOJI, root) / "package" / "color" / "svg",
    }
    dropped: Counter[str] = Counter()
    concepts: list[Concept] = []
    drawings: list[Drawing] = []
    for entry in sorted(meta, key=lambda e: e["sort_order"]):
        reason = _drop_reason(entry)
        record = names.get(emoji_key(entry["unified"]))
        if reason is None and (record is None or not record["annotation"].strip()):
            reason = "no CLDR name"
        if reason is None and "," in record["annotation"]:
            reason = "name with a comma (ZWJ family)"
        if reason:
            dropped[reason] += 1
            continue
        index = len(concepts)
        concept = _concept(entry, record)
        concepts.append(concept)
        variants = [("", entry, record)]
        for tone_key, variant in sorted((entry.get("skin_variations") or {}).items()):
            if tone_key in SKIN_TONES:  # single tones only
                variants.append((SKIN_TONES[tone_key][0], variant, names.get(emoji_key(variant["unified"]))))
        for tone, variant, variant_record in variants:
            for style in ("google", "twitter"):
                if variant.get(f"has_img_{style}"):
                    path = dirs[style] / variant["image"]
                    if path.exists():
                        drawings.append(Drawing(index, style, tone, str(path)))
            if variant_record is not None:
                path = dirs["openmoji"] / f"{variant_record['hexcode']}.svg"
                if path.exists():
                    drawings.append(Drawing(index, "openmoji", tone, str(path)))
            stem = _fluent_stem(concept.name, tone, fluent)
            if stem:
                drawings.append(Drawing(index, "fluent", tone, str(fluent_dir / f"{stem}.svg")))
    if not concepts:
        raise EmojiDataError("the installed emoji packages yielded no concept; run `diffdis emoji install` again")
    return Catalogue(tuple(concepts), tuple(drawings), dict(sorted(dropped.items())))


def _concept(entry: dict, record: dict) -> Concept:
    name = record["annotation"].strip()
    own_words = set(name.lower().split())
    keywords = [k.strip() for k in record["tags"].split(",") if k.strip()]
    keywords = tuple(dict.fromkeys(k for k in keywords if k.lower() not in own_words and k.lower() != name.lower()))
    return Concept(emoji_key(entry["unified"]), name, keywords, entry["category"], entry["subcategory"])


def _fluent_stem(name: str, tone: str, available: set[str]) -> str | None:
    base = FLUENT_ALIASES.get(name, kebab(name))
    if tone:
        suffix = next(f for t, f in SKIN_TONES.values() if t == tone)
        candidates = [f"{base}-{suffix}"]
    else:
        candidates = [base, f"{base}-default"]
    return next((c for c in candidates if c in available), None)
