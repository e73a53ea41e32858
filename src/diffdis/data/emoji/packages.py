"""The emoji art's npm packages: pinned versions, their registry integrity hashes and licences, and the
installer that fetches them once into a cache folder outside the repository (never at training time).

`npm pack NAME@VERSION` downloads each package's tarball; its SHA-512 is checked against the pin before it is
unpacked, so a tarball that differs from the one pinned here is refused and deleted.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ...utils.digest import file_digest


class EmojiDataError(RuntimeError):
    """The emoji packages are missing, damaged or cannot be installed; the message says what to do."""


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    integrity: str  # the registry's `dist.integrity` (Subresource-Integrity form, sha512-BASE64)
    licence: str
    attribution: str  # what a model card must say when a model was trained on this art ("" = none required)

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        return f"{self.name}-{self.version}.tgz"


METADATA = Package(
    "emoji-datasource",
    "16.0.0",
    "sha512-/qHKqK5Nr3+8zhgO6kHmF43Fm5C8HNn0AaFRIpgw8HF3+uF0Vfc8jgLI1ZQS5ba1vBzksS8NBCjHejwLb2D/Sg==",
    "MIT (the metadata)",
    "",
)
GOOGLE = Package(
    "emoji-datasource-google",
    "16.0.0",
    "sha512-ZRexfzs7MVoLnmzZmNsO4TKhnAJp5D++Vm6PpUpH/jEQQlemp3l88CjZ+DoZ2faM9R4QxZkOPJCoT8DlPhfQ3A==",
    "Apache-2.0 (Noto Emoji art)",
    "Noto Emoji by Google, Apache License 2.0",
)
TWITTER = Package(
    "emoji-datasource-twitter",
    "16.0.0",
    "sha512-7F+uCuHH+7Qnrc15P5tnbvKkg9E6tlzi4MnT2uW1RlN4pLYTza6cP/dstIfSDMtpjFLWuZewWg8jBbuL2eyELQ==",
    "CC-BY-4.0 (Twemoji art)",
    "Twemoji by Twitter, Inc and other contributors, CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/)",
)
OPENMOJI = Package(
    "openmoji",
    "17.0.0",
    "sha512-EBnYrNGdcdw+OSXmENeNE1yBNRu6tOraTmoOyUbJkTmvT/+XETp8RZLSJFzD3lrPc5N9CzsyPnRTk0Vp4UaI9w==",
    "CC-BY-SA-4.0 (art and data/openmoji.json)",
    "OpenMoji, the open-source emoji and icon project, CC BY-SA 4.0 (https://openmoji.org); CLDR names and "
    "keywords from openmoji.json",
)
FLUENT = Package(
    "fluentui-emoji",
    "1.3.0",
    "sha512-JTXXwqIie2rWTgOkIJDJxr0WtwTz2WU4kdOq8buLVThYwQ264aFR2jdTyuon2oEbLqqGMT64zI4btyn1saB2xw==",
    "MIT (Microsoft Fluent UI Emoji, flat style)",
    "",
)
PACKAGES: tuple[Package, ...] = (METADATA, GOOGLE, TWITTER, OPENMOJI, FLUENT)


def cache_root() -> Path:
    """Where diffdis keeps downloaded and built data: $DIFFDIS_CACHE, else $XDG_CACHE_HOME/diffdis, else
    ~/.cache/diffdis."""
    if os.environ.get("DIFFDIS_CACHE"):
        return Path(os.environ["DIFFDIS_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffdis"


def emoji_root(root: str | Path | None = None) -> Path:
    return Path(root) if root else cache_root() / "emoji"


def package_dir(package: Package, root: str | Path | None = None) -> Path:
    """The unpacked package (its `package/` folder as npm packs it)."""
    return emoji_root(root) / "npm" / f"{package.name}-{package.version}"


def integrity_of(path: Path) -> str:
    """The npm registry's form of a file's hash (its `dist.integrity`)."""
    return "sha512-" + base64.b64encode(file_digest(path, "sha512").digest()).decode()


def missing_packages(root: str | Path | None = None) -> list[Package]:
    return [p for p in PACKAGES if not (package_dir(p, root) / ".verified").exists()]


def require_packages(root: str | Path | None = None) -> None:
    """Refuse to go on without every package installed and verified, saying how to install them."""
    missing = missing_packages(root)
    if missing:
        raise EmojiDataError(
            f"the emoji art is not installed in {emoji_root(root)} (missing: {', '.join(p.spec for p in missing)}); "
            "run `diffdis emoji install` (it needs npm and the npm registry, about 190 MB, once), or set "
            "DIFFDIS_CACHE to the cache folder that holds it"
        )


def install_packages(root: str | Path | None = None, npm: str = "npm", log=print) -> list[Package]:
    """Fetch, verify and unpack every package not yet installed; returns those it installed."""
    todo = missing_packages(root)
    if not todo:
        return []
    if shutil.which(npm) is None:
        raise EmojiDataError(
            f"`{npm}` was not found: the emoji art comes from the npm registry. Install Node.js and npm "
            "(Debian: `apt-get install npm`), then run `diffdis emoji install` again"
        )
    downloads = emoji_root(root) / "npm" / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    for package in todo:
        log(f"emoji: fetching {package.spec}")
        tarball = downloads / package.tarball
        if not tarball.exists():
            done = subprocess.run(
                [npm, "pack", package.spec, "--silent", "--pack-destination", str(downloads)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0 or not tarball.exists():
                raise EmojiDataError(f"`npm pack {package.spec}` failed: {done.stderr.strip()[-500:]}")
        unpack(package, tarball, package_dir(package, root))
    return todo


def unpack(package: Package, tarball: Path, target: Path) -> None:
    """Check `tarball` against the pinned hash, then unpack it into `target` (replaced whole)."""
    found = integrity_of(tarball)
    if found != package.integrity:
        tarball.unlink()
        raise EmojiDataError(
            f"{tarball.name} has hash {found[:30]}..., not the pinned {package.integrity[:30]}...: the download "
            "was damaged or the registry serves another file under this version. It was deleted; run "
            "`diffdis emoji install` again, and if it fails the same way, report it"
        )
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        archive.extractall(partial, filter="data")
    (partial / ".verified").write_text(package.integrity + "\n")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    tarball.unlink()
