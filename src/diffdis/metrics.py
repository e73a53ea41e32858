"""Ranking metrics for image<->text retrieval from a similarity matrix, both directions, computed in chunks (shared
by the pipeline's `retrieve` and the evaluation package)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _recall(similarity: torch.Tensor, relevance: torch.Tensor, ks: tuple[int, ...], chunk: int) -> dict[int, float]:
    """Rows are queries. A query counts as a hit at K when any relevant column is among its top K."""
    hits = {k: 0 for k in ks}
    counted = 0
    for start in range(0, similarity.shape[0], chunk):
        sim = similarity[start : start + chunk]
        rel = relevance[start : start + chunk]
        has_target = rel.any(dim=1)
        top = sim.topk(min(max(ks), sim.shape[1]), dim=1).indices  # (chunk, K)
        found = rel.gather(1, top)  # (chunk, K) is the j-th ranked item relevant?
        for k in ks:
            hits[k] += int((found[:, :k].any(dim=1) & has_target).sum())
        counted += int(has_target.sum())
    return {k: 100.0 * hits[k] / max(counted, 1) for k in ks}


def recall_at_k(
    similarity: torch.Tensor, relevance: torch.Tensor, ks: tuple[int, ...] = (1, 5, 10), chunk: int = 1024
) -> dict[str, float]:
    """similarity (N_images, N_texts), relevance same shape (bool). Returns percentages keyed like
    `image_to_text_R@1` and `text_to_image_R@1`; queries without any relevant item are not counted."""
    if similarity.shape != relevance.shape:
        raise ValueError(f"similarity {tuple(similarity.shape)} and relevance {tuple(relevance.shape)} differ")
    relevance = relevance.bool()
    i2t = _recall(similarity, relevance, ks, chunk)
    t2i = _recall(similarity.T, relevance.T, ks, chunk)
    return {
        **{f"image_to_text_R@{k}": v for k, v in i2t.items()},
        **{f"text_to_image_R@{k}": v for k, v in t2i.items()},
    }


def relevance_matrix(
    relevance: torch.Tensor | Sequence[Sequence[int]] | None, n_images: int, n_texts: int
) -> torch.Tensor:
    """Which texts are correct for each image, as an (N_images, N_texts) bool matrix: `relevance` as such, or per
    image the list of its matching text indices, or None (text i for image i only, so the counts must match)."""
    if relevance is None:
        if n_images != n_texts:
            raise ValueError(
                f"{n_images} images and {n_texts} texts: the default relevance pairs image i with text i; "
                "pass relevance= (the matching text indices of each image) for other layouts"
            )
        return torch.eye(n_images, dtype=torch.bool)
    if isinstance(relevance, torch.Tensor):
        return relevance
    if len(relevance) != n_images:
        raise ValueError(f"relevance lists {len(relevance)} images' matches for {n_images} images")
    matrix = torch.zeros(n_images, n_texts, dtype=torch.bool)
    for i, matches in enumerate(relevance):
        if any(not 0 <= j < n_texts for j in matches):
            raise ValueError(f"relevance[{i}] = {list(matches)} names a text outside 0-{n_texts - 1}")
        matrix[i, list(matches)] = True
    return matrix
