"""`secml data {generate,enrich,build,ingest,fidelity,validate}` (`python -m secml_recipes.corpus`): the corpus from
the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm.auto import tqdm

from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.corpus.ingest import run as run_ingest
from secml_recipes.corpus.tarball import SPLITS, TASKS, CorpusError, build_corpus, corpus_root, read_split
from secml_recipes.scan.fidelity import run as run_fidelity
from secml_recipes.scan.generate import generate_ndjson, generate_report, plan_hosts, report_bytes
from secml_recipes.tasks.validate import raw_report_error
from secml_recipes.teacher.enrich import enrich_report


def _generate(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for plan in tqdm(plan_hosts(args.hosts, args.seed), desc="generating scans", unit="host", disable=None):
        try:
            report = generate_report(plan, args.version)
        except ValueError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        problem = raw_report_error(report)
        if problem:
            print(f"generated report for {plan.hostname} is invalid: {problem}", file=sys.stderr)
            return 1
        stem = out / f"{plan.hostname}-{plan.host_id}"
        if args.ndjson:
            stem.with_suffix(".ndjson").write_text(generate_ndjson(plan, args.version))
        else:
            stem.with_suffix(".json").write_bytes(report_bytes(report))
    print(f"wrote {args.hosts} {'NDJSON streams' if args.ndjson else 'reports'} (sys-scan {args.version}) to {out}")
    return 0


def _load_report(path: str) -> dict:
    try:
        report = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise SystemExit(f"{path}: cannot read a JSON report: {err}") from None
    problem = raw_report_error(report)
    if problem:
        raise SystemExit(f"{path}: not a sys-scan v2 report: {problem}")
    return report


def _enrich(args) -> int:
    enriched = enrich_report(_load_report(args.report))
    text = json.dumps(enriched, indent=2 if args.pretty else None, separators=None if args.pretty else (",", ":"))
    if args.out:
        Path(args.out).write_text(text + "\n")
    else:
        print(text)
    return 0


def _build(args) -> int:
    manifest = build_corpus(args.out, args.specialist, args.generalist, args.seed, args.max_prompt_chars)
    print(
        json.dumps(
            {
                "out": args.out,
                "counts": manifest["counts"],
                "hosts": manifest["hosts"],
                "profile_mix": manifest["profile_mix"],
                "judge": manifest["judge"],
                "build_seconds": manifest["build_seconds"],
            },
            indent=2,
        )
    )
    print(diversity_table(manifest["episode_diversity"]))
    return 0


def diversity_table(d: dict) -> str:
    """The generalist episodes' diversity as a small Markdown table."""
    rows = [
        ("episodes", d["episodes"]),
        ("call sequence depends on a tool result (measured)", f"{d['result_dependent_share']:.1%}"),
        ("distinct tool-call sequences", d["distinct_call_sequences"]),
        ("distinct / total assistant sentences", f"{d['distinct_assistant_sentences']} / {d['assistant_sentences']}"),
        ("IOC + adversarial share", f"{d['ioc_and_adversarial_share']:.1%}"),
    ]
    rows += [(f"share: {kind}", f"{share:.1%}") for kind, share in d["kind_share"].items()]
    return "\n".join(["| episode diversity | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows])


def _ingest(args) -> int:
    return run_ingest(
        args.inputs, args.out, args.split, [tuple(p) for p in args.pair or []], args.overwrite, args.max_prompt_chars
    )


def _fidelity(args) -> int:
    return run_fidelity(args.real, args.generated, args.hosts, args.seed, args.version, args.out)


def _validate(args) -> int:
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
    parser = argparse.ArgumentParser(prog="secml data", description=__doc__, formatter_class=CommandHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help, formatter_class=CommandHelpFormatter)

    p = command("generate", help="synthetic raw sys-scan reports, one JSON per host")
    p.add_argument("--hosts", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--version", default="5.0.0", help="sys-scan version whose output to model (only 5.0.0 is modelled)")
    p.add_argument("--ndjson", action="store_true", help="write each scan as sys-scan's --ndjson stream")
    p.set_defaults(fn=_generate)
    p = command("enrich", help="reference enrichment of one raw report")
    p.add_argument("report")
    p.add_argument("--out")
    p.add_argument("--pretty", action="store_true")
    p.set_defaults(fn=_enrich)
    p = command("build", help="build massive_datasets.tar.gz")
    p.add_argument("--out", default="data/massive_datasets.tar.gz")
    p.add_argument("--specialist", type=int, default=5000)
    p.add_argument("--generalist", type=int, default=5000)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--max-prompt-chars", type=int, default=12000)
    p.set_defaults(fn=_build)
    p = command("ingest", help="real scans (JSON, --ndjson streams, 0.1.x reports, labelled pairs) -> specialist rows")
    p.add_argument("inputs", nargs="*", help="report files or folders (searched for *.json, *.ndjson, *.jsonl)")
    p.add_argument("--out", required=True, help="ingest folder; new shards are added, never overwritten")
    p.add_argument(
        "--pair",
        nargs=2,
        action="append",
        metavar=("RAW", "ENRICHED"),
        help="an analyst-labelled pair: raw report and its enriched report (repeatable)",
    )
    p.add_argument(
        "--split",
        default="train",
        choices=["train", "eval", "test", "auto"],
        help="split of the new rows; auto assigns by host like the corpus",
    )
    p.add_argument("--overwrite", action="store_true", help="start the --out folder afresh")
    p.add_argument("--ndjson", action="store_true", help=argparse.SUPPRESS)  # the stream is recognised anyway
    p.add_argument("--max-prompt-chars", type=int, default=12000)
    p.set_defaults(fn=_ingest)
    p = command("fidelity", help="a real report vs generated hosts of its profile; defects vs the spec")
    p.add_argument("real", help="a real sys-scan report (JSON)")
    p.add_argument("generated", nargs="?", help="folder of generated reports (default: generate --hosts of them)")
    p.add_argument("--hosts", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--version", default="5.0.0")
    p.add_argument("--out", help="also write the table (markdown) here")
    p.set_defaults(fn=_fidelity)
    p = command("validate", help="validate every row of a corpus (tarball or folder)")
    p.add_argument("path")
    p.add_argument("--rejects-dir", default="rejects")
    p.set_defaults(fn=_validate)
    args = parser.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
