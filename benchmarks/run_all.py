"""`make bench`: every benchmark in one run, each printing its table; results in runs/bench/results.json.

    python -m benchmarks.run_all [--model runs/demo-fashion/model] [--train-steps 400] [--skip memory]

Without --model it measures the demo's model when runs/demo-fashion/model exists, else a tiny model it trains first."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from diffdis.provenance import environment
from diffdis.utils.results import write_json

from . import encoder_cost, generation, memory, profile_paths, training, zero_shot_speed
from .common import OUT, trained_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="saved pipeline to measure (default: runs/demo-fashion/model if present)")
    parser.add_argument("--train-steps", type=int, default=400, help="steps of the fallback model (default 400)")
    parser.add_argument(
        "--skip", action="append", default=[], help="zero_shot, encoder, training, generation, profile, memory"
    )
    args = parser.parse_args()
    model = args.model or ("runs/demo-fashion/model" if Path("runs/demo-fashion/model").exists() else None)
    pipe, model_path = trained_model(model, args.train_steps)
    start = time.perf_counter()
    results = {"model": model_path, "environment": environment(), "device": "cpu", "dtype": "float32"}
    if "zero_shot" not in args.skip:
        z = zero_shot_speed.run(pipe)
        default = z["accuracy_by_steps"]["table"]["ddim, Gaussian start"]["fashion-mnist"]
        results.update(
            zero_shot_speedup_vs_diffusion_classifier=z["vs_diffusion_classifier"]["speedup"],
            zero_shot_accuracy_by_steps=default,
            diffusion_classifier_accuracy=z["vs_diffusion_classifier"]["diffusion_classifier_accuracy"],
            zero_shot=z,
        )
    if "encoder" not in args.skip:
        e = encoder_cost.run(pipe)
        results.update(
            zero_shot_vs_clip_tower_ratio=e["ratio"],
            zero_shot_vs_clip_tower_accuracy=e["accuracy"],
            encoder_cost=e,
        )
    if "training" not in args.skip:
        t = training.run(pipe)
        results.update(joint_vs_gen_step_ratio=t["step"]["joint_vs_gen_step_ratio"], training=t)
    if "generation" not in args.skip:
        g = generation.run(pipe)
        results.update(generate_vs_plain_loop_ratio=g["generate_vs_plain_loop_ratio"], generation=g)
    if "profile" not in args.skip:
        results["profile"] = profile_paths.run(pipe)
    if "memory" not in args.skip:
        mem = memory.run()
        results["peak_memory_mb"] = {
            p: {mode: r.get("peak_rss_mb") for mode, r in modes.items()} for p, modes in mem.items()
        }
        results["memory"] = mem
    results["seconds"] = time.perf_counter() - start
    write_json(OUT / "results.json", results)
    print(f"\nwrote {OUT / 'results.json'} ({results['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
