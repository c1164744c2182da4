"""Training: a recipe becomes a run (`recipe`, `run_settings`), the trainers at TRL's seams (`trainers`), speed and
memory (`speed`, `attention`, `buckets`, `sharding`, `plan/`), and what keeps a run safe (`guards`, `checkpoints`).
`python -m secml_recipes.train RECIPE` (or `secml train`) runs `sft`."""
