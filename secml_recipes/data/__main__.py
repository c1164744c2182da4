"""`python -m secml_recipes.data {generate,enrich,build,ingest,validate}`: the corpus from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm


def _generate(args) -> int:
    from .generate import generate_report, plan_hosts, report_bytes
    from .validate import raw_report_error

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for plan in tqdm(plan_hosts(args.hosts, args.seed), desc="generating scans", unit="host", disable=None):
        report = generate_report(plan)
        problem = raw_report_error(report)
        if problem:
            print(f"generated report for {plan.hostname} is invalid: {problem}", file=sys.stderr)
            return 1
        (out / f"{plan.hostname}-{plan.host_id}.json").write_bytes(report_bytes(report))
    print(f"wrote {args.hosts} reports to {out}")
    return 0


def _load_report(path: str) -> dict:
    from .validate import raw_report_error

    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"{path}: cannot read a JSON report: {err}") from None
    problem = raw_report_error(report)
    if problem:
        raise SystemExit(f"{path}: not a sys-scan v2 report: {problem}")
    return report


def _enrich(args) -> int:
    from .enrich import enrich_report

    enriched = enrich_report(_load_report(args.report))
    text = json.dumps(enriched, indent=2 if args.pretty else None, separators=None if args.pretty else (",", ":"))
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def _build(args) -> int:
    from .corpus import build_corpus

    manifest = build_corpus(args.out, args.specialist, args.generalist, args.seed, args.max_prompt_chars)
    print(json.dumps({"out": args.out, "counts": manifest["counts"], "hosts": manifest["hosts"],
                      "profile_mix": manifest["profile_mix"], "build_seconds": manifest["build_seconds"]}, indent=2))
    print(diversity_table(manifest["episode_diversity"]))
    return 0


def diversity_table(d: dict) -> str:
    """The generalist episodes' diversity as a small Markdown table."""
    rows = [("episodes", d["episodes"]), ("distinct tool-call sequences", d["distinct_call_sequences"]),
            ("distinct / total assistant sentences",
             f"{d['distinct_assistant_sentences']} / {d['assistant_sentences']}"),
            ("IOC + adversarial share", f"{d['ioc_and_adversarial_share']:.1%}")]
    rows += [(f"share: {kind}", f"{share:.1%}") for kind, share in d["kind_share"].items()]
    return "\n".join(["| episode diversity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def _ingest(args) -> int:
    import hashlib

    from .corpus import checked_json_lines
    from .split import specialist_examples
    from .validate import raw_report_error

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, rejects = [], []
    for path in args.reports:
        lines = Path(path).read_text(errors="replace").splitlines() if args.ndjson else [Path(path).read_text(errors="replace")]
        for line_no, _, report, problem in checked_json_lines(lines, raw_report_error):
            if problem:
                rejects.append({"file": path, "line": line_no, "reason": problem})
                continue
            host_id = hashlib.sha256(report["meta"].get("hostname", path).encode()).hexdigest()[:16]
            rows += specialist_examples(report, host_id, args.max_prompt_chars)
    (out / "specialist").mkdir(exist_ok=True)
    (out / "specialist" / f"{args.split}-00000.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if rejects:
        (out / "ingest.rejects.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rejects))
    print(f"ingested {len(rows)} specialist examples into {out}/specialist; {len(rejects)} reports refused"
          + (f" (reasons in {out}/ingest.rejects.jsonl)" if rejects else ""))
    for r in rejects:
        print(f"  refused {r['file']}:{r['line']}: {r['reason']}")
    return 0


def _validate(args) -> int:
    from .corpus import TASKS, SPLITS, CorpusError, corpus_root, read_split

    try:
        root = corpus_root(args.path)
        total_bad = 0
        for task in TASKS:
            for split in SPLITS:
                if not list((root / task).glob(f"{split}-*.jsonl")):
                    continue
                _, report = read_split(args.path, task, split, args.rejects_dir)
                total_bad += sum(v["rejected"] for v in report.values())
    except CorpusError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 1 if total_bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secml_recipes.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("generate", help="synthetic raw sys-scan reports, one JSON per host")
    p.add_argument("--hosts", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(fn=_generate)
    p = sub.add_parser("enrich", help="reference enrichment of one raw report")
    p.add_argument("report")
    p.add_argument("--out")
    p.add_argument("--pretty", action="store_true")
    p.set_defaults(fn=_enrich)
    p = sub.add_parser("build", help="build massive_datasets.tar.gz")
    p.add_argument("--out", default="data/massive_datasets.tar.gz")
    p.add_argument("--specialist", type=int, default=5000)
    p.add_argument("--generalist", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-prompt-chars", type=int, default=12000)
    p.set_defaults(fn=_build)
    p = sub.add_parser("ingest", help="real sys-scan reports -> specialist examples")
    p.add_argument("reports", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--ndjson", action="store_true", help="each input file holds one report per line")
    p.add_argument("--split", default="train")
    p.add_argument("--max-prompt-chars", type=int, default=12000)
    p.set_defaults(fn=_ingest)
    p = sub.add_parser("validate", help="validate every row of a corpus (tarball or folder)")
    p.add_argument("path")
    p.add_argument("--rejects-dir", default="rejects")
    p.set_defaults(fn=_validate)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
