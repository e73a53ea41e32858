"""Classification and retrieval of the user's own image files, and retrieval on a labelled set: what the
`classify --images` and `retrieve` commands run, callable from Python."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..data.captions import EVAL_TEMPLATES, captions_for
from ..data.datasets import LabelledImages
from ..data.files import image_folder
from ..data.image_files import read_images
from ..data.transforms import uint8_to_model
from ..metrics import recall_at_k


def classify_files(pipe, files: Sequence[Path], labels: Sequence[str], templates=None, top_k: int = 1, **query) -> dict:
    """The predicted label of each readable file (unreadable ones are skipped and listed) and its `top_k` most
    probable labels with their probabilities; when every file sits in a folder named after one of the labels
    (class_name/xxx.png), also the top-1 accuracy against those folder names."""
    kept, images, unreadable = read_images(files)
    files = [files[i] for i in kept]
    prediction = pipe.predict(images, labels, templates, **query)
    predictions = prediction.indices.tolist()
    result: dict = {
        "predictions": {str(f): labels[k] for f, k in zip(files, predictions)},
        "top_k": {str(f): [[name, p] for name, p in best] for f, best in zip(files, prediction.top_k(top_k))},
        "images": len(files),
        "unreadable": unreadable,
    }
    if all(f.parent.name in labels for f in files):
        correct = sum(f.parent.name == labels[k] for f, k in zip(files, predictions))
        result["top1"] = 100.0 * correct / len(files)
    return result


def retrieve_folder(pipe, folder: str | Path, limit: int | None = None, **query) -> dict:
    """Image<->text retrieval over a folder with metadata.jsonl ({"file_name", "text"} per line): image i's own
    caption is the one relevant text. Unreadable images are skipped with their captions, and listed."""
    items = image_folder(str(folder)).items[:limit]
    kept, images, unreadable = read_images([path for path, _ in items])
    metrics = pipe.retrieve(images, [items[i][1] for i in kept], **query).metrics
    return {"pairs": len(kept), **metrics, "unreadable": unreadable}


def retrieve_labelled(pipe, data: LabelledImages, **query) -> dict:
    """Retrieval on a labelled set whose captions are its class names in the evaluation templates (one per image,
    seed 0), scored twice: paired (only the image's own caption is relevant) and class-level (any caption of
    the same class). With few classes many captions are equal, so the class-level figures are the informative
    ones; the paired R@1 of a perfect model is about classes / images."""
    captions = captions_for(data.labels.numpy(), data.class_names, EVAL_TEMPLATES, seed=0)
    images = uint8_to_model(data.images)
    paired = pipe.retrieve(images, captions, **query)  # its metrics pair image i with caption i
    same_class = data.labels[:, None] == data.labels[None, :]
    return {
        "pairs": len(captions),
        "paired": paired.metrics,
        "class_level": recall_at_k(paired.similarity, same_class),
    }
