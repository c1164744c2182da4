"""Runs inside the GPTQ environment (`.cache/gptq-venv`, made by `make gptq-env`), never imported by the
main package: gptqmodel 7.7 needs torch>=2.14.1, while training pins torch 2.13.0.

    python gptq_worker.py quantize SRC OUT CALIB.jsonl --bits 4 --group-size 128
    python gptq_worker.py logits QUANTIZED_DIR TOKENS.json OUT.npz

It depends on nothing from secml_recipes, so it runs from its file path alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("GPTQMODEL_CPU_WORKERS", str(min(2, os.cpu_count() or 1)))


def quantize(src: str, out: str, calib: str, bits: int, group_size: int, desc_act: bool) -> None:
    # lazy: only in the GPTQ environment (make gptq-env)
    from gptqmodel import GPTQModel, QuantizeConfig
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(src)
    with open(calib, encoding="utf-8") as fh:
        texts = [json.loads(line)["text"] for line in fh if line.strip()]
    calibration = [tokenizer(t, add_special_tokens=False, truncation=True, max_length=2048) for t in texts]
    calibration = [{"input_ids": c["input_ids"], "attention_mask": c["attention_mask"]} for c in calibration]
    config = QuantizeConfig(bits=bits, group_size=group_size, desc_act=desc_act)
    t0 = time.perf_counter()
    model = GPTQModel.load(src, config)
    model.quantize(calibration, batch_size=1)
    model.save(out)
    tokenizer.save_pretrained(out)
    print(json.dumps({"quantize_seconds": round(time.perf_counter() - t0, 2), "calibration_examples": len(texts)}))


def logits(model_dir: str, tokens_file: str, out: str) -> None:
    # lazy: only in the GPTQ environment (make gptq-env)
    import numpy as np
    import torch
    from gptqmodel import GPTQModel

    t0 = time.perf_counter()
    model = GPTQModel.load(model_dir)
    load = time.perf_counter() - t0
    ids = json.loads(Path(tokens_file).read_text())
    arrays = {}
    with torch.no_grad():
        for i, seq in enumerate(ids):
            device = next(model.model.parameters()).device
            arrays[f"l{i}"] = model.model(torch.tensor([seq], device=device)).logits[0].float().cpu().numpy()
    np.savez(out, **arrays)
    print(json.dumps({"load_seconds": round(load, 3)}))


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize")
    q.add_argument("src")
    q.add_argument("out")
    q.add_argument("calib")
    q.add_argument("--bits", type=int, default=4)
    q.add_argument("--group-size", type=int, default=128)
    q.add_argument("--desc-act", action="store_true")
    lg = sub.add_parser("logits")
    lg.add_argument("model_dir")
    lg.add_argument("tokens")
    lg.add_argument("out")
    args = parser.parse_args()
    if args.cmd == "quantize":
        quantize(args.src, args.out, args.calib, args.bits, args.group_size, args.desc_act)
    else:
        logits(args.model_dir, args.tokens, args.out)


if __name__ == "__main__":
    main()
