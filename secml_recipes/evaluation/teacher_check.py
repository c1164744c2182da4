"""`secml teacher-check`: the teacher's numbers, measured, as Markdown tables.

- the real fixture against the analyst's expectations file (problems, harmful-action rate);
- generated hosts: schema errors, sys-scan-agent parse failures (when it is installed), harmful actions, the
  host risk level per profile and the correlations per rule;
- split parts: correlations kept and lost, parts contradicting their host, parts that do not merge back;
- episodes: tool-call sequences, sentence diversity and kind shares over `--episodes` episodes;
- the independent judge (`judge`, no table shared with the teacher) on the fixture and on `--hosts`
  generated hosts of every profile, per kind of rejected advice, beside the teacher's own harmful-action count.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from tqdm.auto import tqdm

from secml_recipes.command_help import CommandHelpFormatter
from secml_recipes.corpus.episodes import build_episodes, diversity, plant_processes
from secml_recipes.evaluation.expectations import expectation_problems, load_expectations
from secml_recipes.evaluation.harm import harm_summary, harmful_actions
from secml_recipes.judge.report import KINDS, judge, judge_summary
from secml_recipes.scan.fixtures import PACKAGED, real_report_paths
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.scan.host import plan_hosts_per_profile
from secml_recipes.tasks.prompts import compact
from secml_recipes.tasks.split import merge_parts, split_report
from secml_recipes.tasks.validate import enriched_report_error
from secml_recipes.teacher.assess import LEVELS
from secml_recipes.teacher.enrich import build_enrichment


def _table(title: str, rows: list[tuple[str, object]]) -> str:
    return "\n".join([f"| {title} | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]) + "\n"


def _agent_parser():
    try:
        # lazy: optional (make agent)
        from sys_scan_agent.models import EnrichedOutput
    except ImportError:
        return None
    return EnrichedOutput.model_validate


def judge_table(n_per_profile: int, seed: int) -> str:
    """The judge's counts per kind on the real fixtures and on `n_per_profile` generated hosts of every profile, with
    the teacher's own harmful-action count (its tables) on the same outputs."""
    columns: dict[str, list] = {}
    teacher_harmful: Counter = Counter()
    hosts = [(plan.profile, generate_report(plan)) for plan in plan_hosts_per_profile(n_per_profile, seed)]
    hosts += [("real fixture", json.loads(p.read_text())) for p in real_report_paths()]
    for profile, report in tqdm(hosts, desc="judge on the teacher", disable=None):
        output = build_enrichment(report).output
        columns.setdefault(profile, []).append(judge(report, output))
        teacher_harmful[profile] += harm_summary(harmful_actions(output, report))["harmful"]
    summaries = {profile: judge_summary(reports) for profile, reports in columns.items()}
    summaries["all"] = judge_summary([r for reports in columns.values() for r in reports])
    teacher_harmful["all"] = sum(teacher_harmful.values())
    names = list(summaries)
    rows = [
        ("outputs", [summaries[n]["outputs"] for n in names]),
        ("actions", [summaries[n]["actions"] for n in names]),
        *((kind, [summaries[n]["kinds"][kind] for n in names]) for kind in KINDS),
        ("harmful actions (judge)", [summaries[n]["harmful_actions"] for n in names]),
        ("judge_harmful_rate", [f"{summaries[n]['judge_harmful_rate'] or 0:.3f}" for n in names]),
        ("harmful actions (teacher's own tables)", [teacher_harmful[n] for n in names]),
    ]
    head = f"| independent judge ({n_per_profile} hosts of every profile, seed {seed}) | " + " | ".join(names) + " |"
    lines = [head, "|---|" + "---|" * len(names)] + [f"| {k} | " + " | ".join(map(str, v)) + " |" for k, v in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="secml teacher-check",
        description=__doc__,
        formatter_class=CommandHelpFormatter,
    )
    parser.add_argument(
        "--hosts",
        type=int,
        default=200,
        help="generated hosts (and, for the independent judge, hosts of every profile)",
    )
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--max-prompt-chars", type=int, default=12000)
    parser.add_argument("--episodes", type=int, default=1000)
    args = parser.parse_args(argv)

    out = []
    for path in real_report_paths():
        report = json.loads(path.read_text())
        expectations = PACKAGED / path.name.replace(".json", ".expectations.yaml")
        enriched = build_enrichment(report).output
        problems = (
            expectation_problems(enriched, report, load_expectations(expectations))
            if expectations.exists()
            else ["no expectations file"]
        )
        harm = harm_summary(harmful_actions(enriched, report))
        verdict = judge(report, enriched)
        out.append(
            _table(
                f"real fixture {path.name}",
                [
                    (
                        "analyst expectations",
                        f"{len(load_expectations(expectations)['findings'])} findings"
                        if expectations.exists()
                        else "-",
                    ),
                    ("problems", len(problems)),
                    ("host risk level", enriched["summaries"]["analyst"]["risk_level"]),
                    ("actions", harm["actions"]),
                    ("harmful-action rate", harm["harmful_action_rate"]),
                    ("independent judge: harmful actions", f"{verdict.harmful_actions} of {verdict.actions}"),
                    (
                        "independent judge: kinds",
                        ", ".join(f"{k} {n}" for k, n in verdict.counts.items() if n) or "none",
                    ),
                ],
            )
        )
        for p in problems:
            out.append(f"- {p}\n")

    parse = _agent_parser()
    plans = plan_hosts(args.hosts, args.seed)
    reports = [generate_report(plan) for plan in plans]
    reports += [json.loads(p.read_text()) for p in real_report_paths()]
    profiles = [plan.profile for plan in plans] + ["real fixture"] * (len(reports) - len(plans))
    schema_errors = agent_errors = actions = harmful = 0
    parts_total = correlations = lost = contradicting = not_merging = over_budget = 0
    levels: dict[str, Counter] = {}
    rules: Counter = Counter()
    for report, profile in tqdm(list(zip(reports, profiles)), desc="teacher on generated hosts", disable=None):
        enrichment = build_enrichment(report)
        whole = enrichment.output
        levels.setdefault(profile, Counter())[whole["summaries"]["analyst"]["risk_level"]] += 1
        rules.update(c["tags"][0].removeprefix("rule:") for c in whole["correlations"])
        outputs = [whole]
        parts = split_report(report, args.max_prompt_chars, enrichment=enrichment)
        outputs += [c for _, c in parts] if len(parts) > 1 else []
        for output in outputs:
            schema_errors += enriched_report_error(output) is not None
            if parse is not None:
                try:
                    parse(output)
                except ValueError:
                    agent_errors += 1
        harm = harm_summary(harmful_actions(whole, report))
        actions, harmful = actions + harm["actions"], harmful + harm["harmful"]
        parts_total += len(parts)
        correlations += len(whole["correlations"])
        kept = {c["id"] for _, c in parts for c in c["correlations"]}
        lost += len({c["id"] for c in whole["correlations"]} - kept)
        contradicting += sum(c["summaries"] != whole["summaries"] for _, c in parts)
        not_merging += merge_parts([c for _, c in parts]) != whole
        over_budget += sum(
            len(compact(p)) > args.max_prompt_chars or len(compact(c)) > args.max_prompt_chars for p, c in parts
        )
    out.append(
        _table(
            f"teacher on {len(reports)} hosts ({args.hosts} generated, seed {args.seed})",
            [
                ("schema errors (outputs and parts)", schema_errors),
                ("sys-scan-agent parse failures", agent_errors if parse else "not installed (`make agent`)"),
                ("actions", actions),
                ("harmful actions", harmful),
            ],
        )
    )
    out.append(
        _table(
            "host risk level by profile",
            [
                (
                    profile,
                    ", ".join(f"{level} {n}" for level, n in sorted(c.items(), key=lambda kv: LEVELS.index(kv[0]))),
                )
                for profile, c in sorted(levels.items())
            ],
        )
    )
    out.append(_table("correlations by rule", sorted(rules.items(), key=lambda kv: (-kv[1], kv[0])) or [("none", 0)]))
    out.append(
        _table(
            f"split parts (max {args.max_prompt_chars} chars)",
            [
                ("parts", parts_total),
                ("correlations", correlations),
                ("correlations in no part", lost),
                ("parts whose verdict differs from the host's", contradicting),
                ("hosts whose parts do not merge back", not_merging),
                ("parts over budget", over_budget),
            ],
        )
    )

    out.append(judge_table(args.hosts, args.seed))

    episodes, i = [], 0
    plans = plan_hosts(args.episodes, args.seed)  # at least one episode per host, so enough hosts
    with tqdm(total=args.episodes, desc="episodes", disable=None) as bar:
        while len(episodes) < args.episodes:
            new = build_episodes(plant_processes(generate_report(plans[i]), args.seed), args.seed, 3)
            new = new[: args.episodes - len(episodes)]
            episodes += new
            bar.update(len(new))
            i += 1
    d = diversity(episodes)
    out.append(
        _table(
            f"{d['episodes']} episodes from {i} hosts",
            [
                ("call sequence depends on a tool result (measured)", f"{d['result_dependent_share']:.1%}"),
                ("distinct tool-call sequences", d["distinct_call_sequences"]),
                (
                    "distinct / total assistant sentences",
                    f"{d['distinct_assistant_sentences']} / {d['assistant_sentences']}",
                ),
                ("IOC + adversarial share", f"{d['ioc_and_adversarial_share']:.1%}"),
            ]
            + [(f"share: {k}", f"{v:.1%}") for k, v in d["kind_share"].items()],
        )
    )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
