"""Contract tests of the two passes on one UNet (paper Fig. 2-3)."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from diffdis.objective import DiffDisObjective


def _inputs(pipe, b=4):
    g = torch.Generator().manual_seed(1)
    m = pipe.model
    z = torch.randn(b, m.unet.config.in_channels, 16, 16, generator=g)
    c = torch.randn(b, m.null_context.shape[1], m.text_dim, generator=g)
    e = torch.nn.functional.normalize(torch.randn(b, m.text_dim, generator=g), dim=-1)
    t = torch.randint(0, 1000, (b,), generator=g)
    return z, c, e, t


def test_generation_pass_is_the_plain_unet_bit_for_bit(small_pipeline):
    model = small_pipeline.model.eval()
    plain = UNet2DConditionModel.from_config(model.unet.config).eval()
    plain.load_state_dict(model.unet.state_dict())
    z, c, _, t = _inputs(small_pipeline)
    with torch.no_grad():
        ours = model(z, t, c)
        reference = plain(z, t, encoder_hidden_states=c).sample
    assert torch.equal(ours, reference)


def test_shapes_of_both_streams(small_pipeline):
    model = small_pipeline.model
    z, c, e, t = _inputs(small_pipeline)
    assert model(z, t, c).shape == z.shape  # ε̂_z
    assert model.predict_query(z, e, t).shape == e.shape  # ê_0
    # one dual-stream block per attention block of the down path and the mid block
    n_attn = sum(len(getattr(b, "attentions", [])) for b in model.unet.down_blocks) + len(
        model.unet.mid_block.attentions
    )
    assert len(model.blocks) == n_attn > 1


def test_discrimination_pass_ignores_caption_tokens_and_skips_the_up_path(small_pipeline):
    pipe = small_pipeline
    model = pipe.model.eval()
    z, c, e, _ = _inputs(pipe)
    called = []
    hooks = [
        m.register_forward_hook(lambda *a, name=n: called.append(name))
        for n, m in [("up", b) for b in model.unet.up_blocks] + [("conv_out", model.unet.conv_out)]
    ]
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train)
    model_query = []
    original = model.predict_query

    def spy(*args):
        out = original(*args)
        model_query.append(out)
        return out

    model.predict_query = spy
    for captions in (c, torch.randn_like(c) * 5):  # same image, same e and noise; very different caption tokens
        torch.manual_seed(3)
        objective.loss(z, captions, e)
    del model.predict_query
    assert torch.equal(model_query[0], model_query[1])
    called.clear()
    with torch.no_grad():
        model.predict_query(z, e, torch.full((4,), 500))
    assert called == []
    for h in hooks:
        h.remove()


def test_gradients_reach_text_stream_unique_transformer_and_shared_unet(small_pipeline):
    pipe = small_pipeline
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train).train()
    z, c, e, _ = _inputs(pipe, b=6)
    out = objective.loss(z, c, e)
    out["loss"].backward()
    model = pipe.model

    def has_grad(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert has_grad(model.blocks["0"].fc_in) and has_grad(model.blocks[str(len(model.blocks) - 1)].text_ffs)
    assert has_grad(model.unique)
    assert objective.logit_scale.grad is not None
    # the shared self-attention of a dual-stream block gets gradients from the discrimination loss alone
    model.zero_grad()
    z, c, e, t = _inputs(pipe)
    model.predict_query(z, e, t).sum().backward()
    first_attention = next(a for b in model.unet.down_blocks for a in getattr(b, "attentions", []))
    assert has_grad(first_attention.transformer_blocks[0].attn1)
    assert has_grad(model.unet.conv_in)
    assert not has_grad(model.unet.up_blocks[0])


@pytest.mark.slow
def test_both_losses_fall_when_overfitting_one_batch(small_pipeline):
    pipe = small_pipeline
    torch.manual_seed(0)
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train).train()
    objective.text_dropout = objective.image_dropout = 0.0
    z, c, e, _ = _inputs(pipe, b=8)
    opt = torch.optim.Adam(objective.parameters(), lr=2e-3)
    history = []
    for step in range(60):
        gen = torch.Generator().manual_seed(step % 4)  # a few fixed noise draws: a learnable target
        out = objective.loss(z, c, e, generator=gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        history.append((out["l_ig"].item(), out["l_ita"].item()))
    first = torch.tensor(history[:4]).mean(0)
    last = torch.tensor(history[-4:]).mean(0)
    assert last[0] < 0.7 * first[0], (first, last)
    assert last[1] < 0.5 * first[1], (first, last)


def test_gradient_checkpointing_gives_the_same_gradients(small_pipeline):
    model = small_pipeline.model.train()
    z, _, e, t = _inputs(small_pipeline)

    def grads():
        model.zero_grad()
        model.predict_query(z, e, t).square().sum().backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    plain = grads()
    model.unet.enable_gradient_checkpointing()
    checkpointed = grads()
    model.unet.disable_gradient_checkpointing()
    assert len(plain) == len(checkpointed)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed))


def test_objective_runs_under_bf16_autocast(small_pipeline):
    pipe = small_pipeline
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train).train()
    z, c, e, _ = _inputs(pipe)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = objective.loss(z, c, e)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["l_ig"].dtype == torch.float32


def test_identical_captions_are_positives_of_each_other(small_pipeline):
    pipe = small_pipeline
    objective = DiffDisObjective.from_pipeline(pipe, pipe.config.train)
    e = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    e = torch.stack([e[0], e[0], e[1]])  # captions 0 and 1 are the same text
    e_hat = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    logits = objective.logit_scale.exp() * e_hat @ e.T
    targets = torch.tensor([[0.5, 0.5, 0], [0.5, 0.5, 0], [0, 0, 1.0]])
    by_hand = 0.5 * (
        -(targets * logits.log_softmax(1)).sum(1).mean() - (targets * logits.T.log_softmax(1)).sum(1).mean()
    )
    assert torch.allclose(objective.contrastive(e_hat, e), by_hand, atol=1e-5)


def test_shared_context_attention_equals_the_module_call(small_pipeline):
    from diffdis.models.text_stream import shared_context_attention

    attn = small_pipeline.model.attention_blocks()[0].transformer_blocks[0].attn2
    x = torch.randn(3, 10, attn.to_q.in_features)
    context = small_pipeline.model.null_context  # (1, L, D), shared by the batch
    with torch.no_grad():
        expected = attn(x, encoder_hidden_states=context.expand(3, -1, -1))
        assert torch.allclose(shared_context_attention(attn, x, context), expected, atol=1e-6)


def test_a_shared_context_attention_block_equals_the_module_call(small_pipeline):
    from diffdis.models.text_stream import shared_context_transformer

    for transformer in small_pipeline.model.attention_blocks():
        channels = transformer.norm.num_channels
        h = torch.randn(3, channels, 4, 4)
        context = small_pipeline.model.null_context
        with torch.no_grad():
            expected = transformer(h, encoder_hidden_states=context.expand(3, -1, -1), return_dict=False)[0]
            assert torch.allclose(shared_context_transformer(transformer, h, context), expected, atol=1e-5)
