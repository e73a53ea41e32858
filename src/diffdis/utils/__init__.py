"""Infrastructure any layer may use (training, evaluation, experiments, benchmarks, the faces): result files,
image grids, charts, timing. Nothing here imports the model."""
