"""Choose an emoji model's generation settings (guidance, sampler steps, self-checked candidates) on tuning
concepts: seen concepts that the figures of record never prompt, judged by the emoji judge.

The figures of record prompt the first 48 seen concepts of `prompt_concepts`' seeded order and every test concept;
these settings are scored on the next 96 seen concepts of that order, two samples each, so choosing on them reads
neither. (Validation concepts are not used: no model so far draws one the judge names, so they cannot choose.)

    python -m diffdis.experiments.generation_settings MODEL --out runs/emoji-tuning/NAME.json [--settings 5,50,16]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ..data.emoji import GENERATION_TEMPLATE, EmojiData
from ..evaluation.emoji import emoji_generation, emoji_judge
from ..pipeline import DiffDisPipeline
from ..provenance import provenance
from ..utils.results import write_json
from .emoji_demo import JUDGE_EPOCHS, prompt_concepts

REPORTED = 48  # seen concepts the figures of record prompt (emoji_demo.evaluate_emoji_model)
TUNING = 96  # the next ones, prompted here
PER_CONCEPT = 2
# (guidance, DDIM steps, candidates): guidance first at the default steps, then steps and self-checking
SETTINGS = (
    *((g, 50, 1) for g in (1.0, 2.0, 3.0, 5.0, 7.0, 10.0)),
    *((g, 20, 1) for g in (3.0, 5.0)),
    *((g, 50, k) for g in (3.0, 5.0) for k in (4, 8)),
)


def tuning_concepts(emoji: EmojiData) -> list[int]:
    """Seen concepts no figure of record prompts: the next TUNING in prompt_concepts' seeded order."""
    seen, _ = prompt_concepts(emoji)
    return seen[REPORTED : REPORTED + TUNING]


def sweep(model: str, out: str | Path, settings=SETTINGS) -> dict:
    pipe = DiffDisPipeline.from_pretrained(model)
    emoji = EmojiData.load(pipe.config.model.resolution)
    emoji.check_split(pipe.vocabulary)
    judge, judge_record = emoji_judge(emoji, epochs=JUDGE_EPOCHS)
    concepts = tuning_concepts(emoji)
    rows = []
    for guidance, steps, candidates in settings:
        _, judged = emoji_generation(pipe, emoji, judge, concepts, PER_CONCEPT, 0, steps, guidance, candidates)
        correct = torch.tensor(judged["correct"]).view(-1, PER_CONCEPT)  # (concepts, samples) 0/1
        rows.append(
            {
                "guidance_scale": guidance,
                "num_inference_steps": steps,
                "candidates": candidates,
                "judged_correct": round(judged["judged_correct"], 2),
                "concepts_drawn": int(correct.any(1).sum()),
            }
        )
        print(rows[-1], flush=True)
    record = {
        **provenance(),
        "model": model,
        "what": f"generation judged correct on {len(concepts)} seen tuning concepts x {PER_CONCEPT} samples (seed 0, "
        f"DDIM, prompt {GENERATION_TEMPLATE!r}); none of them is prompted by a figure of record",
        "tuning_concepts": [emoji.names[c] for c in concepts],
        "judge": judge_record,
        "settings": rows,
    }
    write_json(Path(out), record)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a released model's name or a model folder")
    parser.add_argument("--out", required=True, help="the JSON record to write")
    parser.add_argument(
        "--settings",
        nargs="+",
        type=_setting,
        default=SETTINGS,
        help="GUIDANCE,STEPS,CANDIDATES triples to score (default: the grid in SETTINGS)",
    )
    args = parser.parse_args()
    sweep(args.model, args.out, args.settings)


def _setting(text: str) -> tuple[float, int, int]:
    try:
        guidance, steps, candidates = text.split(",")
        return float(guidance), int(steps), int(candidates)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}; give GUIDANCE,STEPS,CANDIDATES, e.g. 5,50,8") from None


if __name__ == "__main__":
    main()
