"""`diffdis app`: the web app (Gradio Blocks), a thin face over AppService like the CLI over the pipeline.

Tabs: Generate, Classify, Retrieve, Round trip (both directions of one network on one screen) and Model (its
card, config, training summary, measured figures, sample grid). Named API endpoints (/generate, /classify,
/retrieve, /rank_captions, /round_trip) serve gradio_client. It runs offline: analytics off, no share link,
local assets only, bound to 127.0.0.1 unless asked otherwise. One job at a time uses the model; at most
`Limits.queue` wait, and a request beyond that is refused at once ("queue full").
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read when gradio is imported: no calls home

from PIL import Image  # noqa: E402

from ..config import DEFAULT_GENERATION_STEPS, DEFAULT_GUIDANCE, DEFAULT_QUERY_STEPS  # noqa: E402
from ..data.datasets import FASHION_MNIST_DIR  # noqa: E402
from ..samplers import DEFAULT_SAMPLER, sampler_names  # noqa: E402
from ..utils.optional import require  # noqa: E402
from . import inputs  # noqa: E402
from .inputs import InputError, Limits  # noqa: E402
from .service import AppService, random_seed, top_label  # noqa: E402

gr = require("gradio", "app")

CSS = ".pixelated img { image-rendering: pixelated; }"  # small images enlarged without blur
CACHE_CLEANUP = (600, 3600)  # every 10 minutes, delete uploads and outputs older than an hour


def friendly(fn):
    """Show a user's mistake (InputError, or a ValueError the pipeline raised) as a message in the page."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ValueError as error:  # InputError included
            raise gr.Error(str(error), print_exception=False) from None

    return wrapper


def _warn_unfamiliar(service: AppService, texts: list[str]) -> None:
    odd = service.unfamiliar(texts)
    if odd:
        gr.Warning(f"unlike anything this model was trained on: {', '.join(odd[:5])}; expect weak results")


def _reporter(progress: gr.Progress, desc: str):
    """Sampler steps to the page's progress bar. (Gradio fills a handler's `progress=gr.Progress()` default.)"""
    return lambda done, total: progress((done, total), desc=desc)


def _gallery(label: str, elem_id: str | None = None) -> gr.Gallery:
    """Small images shown whole and sharp, four to a row, as PNG."""
    return gr.Gallery(
        label=label, format="png", columns=4, elem_classes="pixelated", object_fit="contain", elem_id=elem_id
    )


def build_app(service: AppService, cache_cleanup: tuple[int, int] = CACHE_CLEANUP) -> gr.Blocks:
    limits = service.limits
    labels_text = ", ".join(service.default_labels())
    with gr.Blocks(title="DiffDis", analytics_enabled=False, delete_cache=cache_cleanup) as app:
        gr.Markdown(
            "# DiffDis\nOne diffusion model that generates images from text and scores images against text. "
            f"Model: `{service.release['name'] + ' (released)' if service.release else service.model_dir}`."
        )
        with gr.Tab("Generate"):
            _generate_tab(service, limits)
        with gr.Tab("Classify"):
            _classify_tab(service, limits, labels_text)
        with gr.Tab("Retrieve"):
            _retrieve_tab(service, limits)
        with gr.Tab("Round trip"):
            _round_trip_tab(service, limits, labels_text)
        with gr.Tab("Model"):
            _model_tab(service)
    app.queue(max_size=limits.queue, default_concurrency_limit=1)
    return app


def _generate_tab(service: AppService, limits: Limits) -> None:
    with gr.Row():
        with gr.Column():
            showcase = service.showcase_prompts()
            prompt = gr.Textbox(
                showcase[0], label="prompt", placeholder="a photo of a dress.", max_lines=2, elem_id="generate-prompt"
            )
            num_images = gr.Slider(1, limits.num_images, value=4, step=1, label="images")
            steps = gr.Slider(1, limits.steps, value=DEFAULT_GENERATION_STEPS, step=1, label="sampler steps (DDIM)")
            guidance = gr.Slider(1.0, 15.0, value=DEFAULT_GUIDANCE, step=0.5, label="classifier-free guidance")
            with gr.Row():
                seed = gr.Number(0, label="seed", precision=0)
                randomize = gr.Checkbox(False, label="randomize seed")
            candidates = gr.Slider(
                1,
                limits.candidates,
                value=1,
                step=1,
                label="candidates: draw this many per image and keep the one the model scores best",
                interactive=service.pipe.can_discriminate,
            )
            button = gr.Button("Generate", variant="primary", elem_id="generate-button")
        gallery = _gallery("images, each with the model's own score of it", "generate-gallery")
    if len(showcase) > 1:
        gr.Examples([[p] for p in showcase[1:5]], inputs=[prompt])

    @friendly
    def run(prompt, num_images, steps, guidance, seed, randomize_seed, candidates, progress=gr.Progress()):  # noqa: B008
        prompt = inputs.prompt(prompt, limits)
        seed = random_seed() if randomize_seed else inputs.whole(seed, "seed", 0, 2**31 - 1)
        _warn_unfamiliar(service, [prompt])
        images = service.generate(
            prompt,
            inputs.whole(num_images, "images", 1, limits.num_images),
            inputs.whole(steps, "steps", 1, limits.steps),
            float(guidance),
            seed,
            inputs.whole(candidates, "candidates", 1, limits.candidates),
            progress=_reporter(progress, "sampling"),
        )
        return [(x.image, x.caption) for x in images], seed

    button.click(
        run, [prompt, num_images, steps, guidance, seed, randomize, candidates], [gallery, seed], api_name="generate"
    )


def _query_settings(limits: Limits):
    with gr.Accordion("advanced", open=False):
        steps = gr.Slider(1, min(limits.steps, 50), value=DEFAULT_QUERY_STEPS, step=1, label="query steps")
        sampler = gr.Dropdown(list(sampler_names("query")), value=DEFAULT_SAMPLER, label="query sampler")
    return steps, sampler


def _classify_tab(service: AppService, limits: Limits, labels_text: str) -> None:
    with gr.Row():
        with gr.Column():
            files = gr.File(label="images", file_count="multiple", file_types=["image"], elem_id="classify-files")
            labels = gr.Textbox(
                labels_text, label="labels, separated by commas or new lines", lines=3, elem_id="classify-labels"
            )
            top_k = gr.Slider(1, 10, value=5, step=1, label="top k")
            steps, sampler = _query_settings(limits)
            button = gr.Button("Classify", variant="primary", elem_id="classify-button")
        with gr.Column():
            first = gr.Label(label="first image: the top k labels", num_top_classes=10, elem_id="classify-result")
            gallery = _gallery("every image with its top label")
    if service.examples:
        gr.Examples([[[str(p)], labels_text] for p in service.examples[:5]], inputs=[files, labels])
    if service.emoji:  # the same drawings against every concept name, trained on or not (1,426-way)
        every = ", ".join(service.all_labels())
        gr.Examples([[[str(p)], every] for p in service.examples[:3]], inputs=[files, labels], label="every concept")

    @friendly
    def run(images, labels, top_k, query_steps, query_sampler):
        names = inputs.labels(labels, limits)
        pictures = inputs.open_images(images, limits)
        _warn_unfamiliar(service, names)
        top_k = inputs.whole(top_k, "top k", 1, 10)
        query_steps = inputs.whole(query_steps, "query steps", 1, limits.steps)
        per_image = service.classify(pictures, names, query_steps, query_sampler)
        captions = [top_label(p) for p in per_image]
        return dict(list(per_image[0].items())[:top_k]), list(zip(pictures, captions))

    button.click(run, [files, labels, top_k, steps, sampler], [first, gallery], api_name="classify")


def _retrieve_tab(service: AppService, limits: Limits) -> None:
    gallery_data = service.gallery
    gr.Markdown("### Text to images" + (f": searching {gallery_data.name}" if gallery_data else ""))
    if gallery_data is None:
        gr.Markdown("No gallery: start the app with `--gallery DIR`, or install the Fashion-MNIST data package.")
    else:
        with gr.Row():
            with gr.Column():
                query = gr.Textbox(label="text query", placeholder="a photo of a sandal.")
                top = gr.Slider(1, 24, value=8, step=1, label="matches")
                steps, sampler = _query_settings(limits)
                button = gr.Button("Search", variant="primary")
            matches = _gallery("best matches, with cosine similarity")
        names = service.default_labels()
        gr.Examples([[service.prompt(names[0])], [names[1]], [names[2]]], inputs=[query])

        @friendly
        def search(query, matches, query_steps, query_sampler):
            query = inputs.prompt(query, limits)
            matches = inputs.whole(matches, "matches", 1, 24)
            query_steps = inputs.whole(query_steps, "query steps", 1, limits.steps)
            found = service.search_gallery(query, matches, query_steps, query_sampler)
            return [(image, f"{cosine:.3f}: {name}") for image, name, cosine in found]

        button.click(search, [query, top, steps, sampler], [matches], api_name="retrieve")

    gr.Markdown("### Image to captions")
    with gr.Row():
        with gr.Column():
            image = gr.File(label="image", file_types=["image"])
            captions = gr.Textbox(
                "\n".join(service.prompt(name) for name in service.default_labels()[:3]),
                label="captions, one per line",
                lines=4,
            )
            rank = gr.Button("Rank captions", variant="primary")
        ranked = gr.Label(label="captions by probability", num_top_classes=10)
    if service.examples:
        gr.Examples([[str(p)] for p in service.examples[:3]], inputs=[image])

    @friendly
    def rank_captions(image, captions):
        lines = inputs.captions(captions, limits)
        return service.rank_captions(inputs.open_images([image] if image else [], limits)[0], lines)

    rank.click(rank_captions, [image, captions], [ranked], api_name="rank_captions")


def _round_trip_tab(service: AppService, limits: Limits, labels_text: str) -> None:
    gr.Markdown("A prompt becomes images, and the same network then says which label each image shows.")
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(label="prompt", placeholder="a photo of a sneaker.")
            labels = gr.Textbox(labels_text, label="labels to classify the images against", lines=3)
            num_images = gr.Slider(1, limits.num_images, value=4, step=1, label="images")
            seed = gr.Number(0, label="seed", precision=0)
            button = gr.Button("Generate, then classify", variant="primary")
        with gr.Column():
            gallery = _gallery("generated, with the label it was classified as")
            mean = gr.Label(label="mean probability over the images", num_top_classes=5)
    gr.Examples([[service.prompt(name)] for name in service.default_labels()[4:7]], inputs=[prompt])

    @friendly
    def run(prompt, labels, num_images, seed, progress=gr.Progress()):  # noqa: B008
        prompt, names = inputs.prompt(prompt, limits), inputs.labels(labels, limits)
        if not (service.pipe.can_generate and service.pipe.can_discriminate):
            variant = service.pipe.config.model.variant
            raise InputError(f"a round trip needs a model that does both; this one is a `{variant}` model")
        num_images = inputs.whole(num_images, "images", 1, limits.num_images)
        seed = inputs.whole(seed, "seed", 0, 2**31 - 1)
        scored, probabilities = service.round_trip(
            prompt, names, num_images, seed, progress=_reporter(progress, "sampling")
        )
        return [(x.image, x.caption) for x in scored], probabilities

    button.click(run, [prompt, labels, num_images, seed], [gallery, mean], api_name="round_trip")


def _model_tab(service: AppService) -> None:
    files = service.model_files()
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown(service.card())
        with gr.Column(scale=2):
            if files["samples"]:
                gr.Image(Image.open(files["samples"]), label="sample grid", format="png", elem_classes="pixelated")
            if files["measured"]:
                gr.JSON(files["measured"], label="measured figures")
            gr.JSON(files["training"] or {}, label="training summary")
            gr.JSON(files["config"], label="config")


def serve(
    model_dir: str | Path,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "cpu",
    dtype: str = "float32",
    gallery: str | Path | None = None,
    limits: Limits | None = None,
    block: bool = True,
    data_dir: str | Path = FASHION_MNIST_DIR,
    cache_cleanup: tuple[int, int] = CACHE_CLEANUP,
):
    """Load the model, build the app and serve it until interrupted; with `block=False`, serve in the background
    and return (app, service). `data_dir`: where the Fashion-MNIST examples and default gallery come from."""
    from ..pipeline import DiffDisPipeline
    from ..pretrained import resolve_model

    limits = limits or Limits()
    model_dir = resolve_model(model_dir)  # a folder, or a released model's name
    pipe = DiffDisPipeline.from_pretrained(model_dir, device=device, dtype=dtype)
    service = AppService(pipe, model_dir, limits, gallery, data_dir)
    app = build_app(service, cache_cleanup)
    try:
        app.launch(
            server_name=host,
            server_port=port,
            share=False,
            show_error=True,
            max_file_size=limits.upload_bytes,
            allowed_paths=[str(service.examples_dir)],
            prevent_thread_lock=not block,
            ssr_mode=False,
            pwa=False,
            mcp_server=False,
            css=CSS,
            quiet=not block,
        )
    except BaseException:
        service.close()
        raise
    if not block:
        return app, service
    service.close()
    return None
