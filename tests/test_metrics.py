"""Retrieval recall against a hand-computed case and a naive implementation."""

from __future__ import annotations

import torch

from diffdis.evaluation.zero_shot import confusion_matrix
from diffdis.metrics import recall_at_k


def test_recall_hand_computed():
    similarity = torch.tensor([[0.9, 0.1, 0.5], [0.2, 0.3, 0.8], [0.1, 0.7, 0.6]])
    relevance = torch.eye(3, dtype=torch.bool)
    m = recall_at_k(similarity, relevance, ks=(1, 2))
    # image->text: row 0 ranks 0 first (hit); row 1 ranks 2,1 (hit at 2); row 2 ranks 1,2 (hit at 2)
    assert m["image_to_text_R@1"] == 100 / 3 and m["image_to_text_R@2"] == 100.0
    # text->image: column 0 ranks image 0 first (hit); column 1 ranks 2,1 (hit at 2); column 2 ranks 1,2 (hit at 2)
    assert m["text_to_image_R@1"] == 100 / 3 and m["text_to_image_R@2"] == 100.0
    # a relevant item ranked third is a miss at K=2
    assert recall_at_k(similarity, torch.eye(3, dtype=torch.bool).roll(1, dims=1), ks=(2,))["image_to_text_R@2"] < 100


def _naive(similarity, relevance, k):
    hits = [bool(relevance[i, similarity[i].argsort(descending=True)[:k]].any()) for i in range(len(similarity))]
    return 100.0 * sum(hits) / len(hits)


def test_chunked_equals_naive():
    g = torch.Generator().manual_seed(0)
    similarity = torch.randn(53, 71, generator=g)
    relevance = torch.rand(53, 71, generator=g) < 0.05
    relevance[torch.arange(53), torch.arange(53)] = True  # every image and text has a relevant partner
    relevance[:, 53:] |= torch.rand(53, 18, generator=g) < 0.3
    relevance[0, 53:] = True
    m = recall_at_k(similarity, relevance, ks=(1, 5, 10), chunk=7)
    for k in (1, 5, 10):
        assert abs(m[f"image_to_text_R@{k}"] - _naive(similarity, relevance, k)) < 1e-9
        assert abs(m[f"text_to_image_R@{k}"] - _naive(similarity.T, relevance.T, k)) < 1e-9


def test_confusion_matrix():
    c = confusion_matrix(torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 1, 0]), 3)
    assert c.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 0]]


class _FixedScores:
    """A stand-in pipeline whose image-class scores are given, to check the zero-shot bookkeeping by hand."""

    def __init__(self, scores):
        self._scores = scores

    def scores(self, images, class_names, templates, **kwargs):
        return self._scores


def test_zero_shot_top1_and_top5_by_hand():
    from diffdis.data.datasets import LabelledImages
    from diffdis.evaluation.zero_shot import zero_shot

    scores = torch.zeros(3, 7)
    scores[0, 2] = 1.0  # image 0 (label 2): top-1 hit
    scores[1, :6] = torch.tensor([6.0, 5, 4, 3, 2, 1])  # image 1 (label 4): rank 5 -> top-5 hit, top-1 miss
    scores[2, :6] = torch.tensor([6.0, 5, 4, 3, 2, 1])  # image 2 (label 6): rank 7 -> miss
    data = LabelledImages(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), torch.tensor([2, 4, 6]), tuple("abcdefg"))
    result = zero_shot(_FixedScores(scores), data)
    assert abs(result.accuracy - 100 / 3) < 1e-4 and abs(result.top5 - 200 / 3) < 1e-4
    assert result.predictions.tolist() == [2, 0, 0]


def test_paired_interval_matches_a_hand_computed_case():
    from diffdis.evaluation.significance import paired_interval

    # differences 1, 2, 3: mean 2, sample sd 1, t(0.975, 2) = 4.302653, half-width 4.302653 / sqrt(3) = 2.484138
    r = paired_interval([11.0, 12.0, 13.0], [10.0, 10.0, 10.0])
    assert r["mean_difference"] == 2.0 and r["seeds"] == 3
    assert abs(r["low"] - (2 - 2.484138)) < 1e-5 and abs(r["high"] - (2 + 2.484138)) < 1e-5
    assert r["significant"] is False  # the interval reaches below 0
    assert paired_interval([5.0, 5.1, 5.2], [1.0, 1.0, 1.1])["significant"] is True
    assert paired_interval([5.0], [1.0])["low"] is None


def test_unseen_class_accuracy_by_hand():
    from diffdis.evaluation.zero_shot import unseen_class_accuracy

    # 4 classes, classes 2 and 3 unseen; one image per class
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.2], [0.2, 0.1, 0.8, 0.3], [0.7, 0.1, 0.6, 0.65], [0.1, 0.2, 0.3, 0.9]])
    r = unseen_class_accuracy(scores, torch.tensor([0, 1, 2, 3]), unseen=[2, 3])
    assert r["unseen_top1"] == 50.0 and r["unseen_chance"] == 50.0  # image 2 -> 3 among {2, 3}; image 3 right
    assert r["generalized_seen_top1"] == 50.0  # image 0 right, image 1 taken by unseen class 2
    assert r["generalized_unseen_top1"] == 50.0  # image 2 goes to seen class 0, image 3 right
    assert r["generalized_harmonic_mean"] == 50.0 and r["generalized_chance"] == 25.0
