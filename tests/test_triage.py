"""`python -m secml_recipes.use.triage`: split as training did, validate each part, merge, never hide a bad part."""

import json
import shutil

import pytest

from secml_recipes.scan.fixtures import real_report_paths
from secml_recipes.tasks.prompts import report_text
from secml_recipes.tasks.split import compact, split_report
from secml_recipes.tasks.validate import enriched_report_error
from secml_recipes.teacher.enrich import build_enrichment
from secml_recipes.use import triage as triage_cli

MAX_CHARS = 6000


class ScriptedSpecialist:
    """Answers each part with what `answer(part_index, teacher_completion)` says; records the prompts."""

    name = "scripted"
    family = None

    def __init__(self, report, answer, max_prompt_chars=MAX_CHARS):
        pairs = split_report(report, max_prompt_chars)
        self.by_prompt = {report_text(part): (i, completion) for i, (part, completion) in enumerate(pairs)}
        self.answer, self.rendered = answer, []

    def render(self, messages, tools=None):
        self.rendered.append(messages)
        return messages[-1]["content"]

    def generate(self, prompts, max_new_tokens, constraint=None):
        return [self.answer(*self.by_prompt[p]) for p in prompts]


@pytest.fixture(scope="module")
def real_report():
    return json.loads(real_report_paths()[0].read_text())


def test_valid_parts_merge_back_into_the_whole_enrichment(real_report):
    model = ScriptedSpecialist(real_report, lambda i, teacher: "```json\n" + compact(teacher) + "\n```")
    enriched, parts = triage_cli.triage(real_report, model, MAX_CHARS, progress=False)
    assert len(parts) > 1 and all(p.status == "valid" and p.reason is None for p in parts)
    assert enriched_report_error(enriched) is None
    whole = build_enrichment(real_report).output
    assert [f["id"] for f in enriched["enriched_findings"]] == [f["id"] for f in whole["enriched_findings"]]
    assert enriched["summaries"] == whole["summaries"]
    # Every prompt is what training showed the specialist: the system prompt and one part as compact JSON.
    assert all(m[0]["role"] == "system" and json.loads(m[1]["content"])["meta"]["secml_part"] for m in model.rendered)


def test_parts_decoded_by_several_copies_at_once_come_back_in_order(real_report):
    """Copies of the model (`--parallel`) answer parts as they come free; the parts, their outputs and the merged
    report are those of one model answering in order, and both copies did work."""
    import threading
    import time as clock

    def answer(i, teacher):
        clock.sleep(0.01 * (i % 3))  # parts finish out of order
        return compact(teacher)

    one = ScriptedSpecialist(real_report, answer)
    copies = [ScriptedSpecialist(real_report, answer) for _ in range(2)]
    callers = set()
    for copy in copies:
        inner = copy.generate
        copy.generate = lambda p, n, constraint=None, inner=inner: callers.add(threading.get_ident()) or inner(p, n)
    alone, alone_parts = triage_cli.triage(real_report, one, MAX_CHARS, progress=False)
    together, parts = triage_cli.triage(real_report, copies, MAX_CHARS, progress=False)
    assert together == alone
    assert [(p.part, p.status, p.output) for p in parts] == [(p.part, p.status, p.output) for p in alone_parts]
    assert all(copy.rendered for copy in copies) and len(callers) == 2


def test_an_invalid_part_is_reported_and_left_out_unless_filled_from_the_teacher_marked(real_report):
    pairs = split_report(real_report, MAX_CHARS)
    bad = next(i for i, (_, c) in enumerate(pairs) if c["enriched_findings"])
    bad_ids = {f["id"] for f in pairs[bad][1]["enriched_findings"]}
    others = {f["id"] for i, (_, c) in enumerate(pairs) if i != bad for f in c["enriched_findings"]}

    def answer(i, teacher):
        return '{"enriched_findings": "oops"}' if i == bad else compact(teacher)

    enriched, parts = triage_cli.triage(real_report, ScriptedSpecialist(real_report, answer), MAX_CHARS, progress=False)
    assert parts[bad].status == "invalid" and "not a valid enriched report" in parts[bad].reason
    assert parts[bad].output == '{"enriched_findings": "oops"}'
    ids = {f["id"] for f in enriched["enriched_findings"]}
    assert not (bad_ids - others) & ids, "the teacher must not silently stand in for the model"
    assert all(triage_cli.TEACHER_TAG not in f["tags"] for f in enriched["enriched_findings"])

    filled, parts = triage_cli.triage(
        real_report, ScriptedSpecialist(real_report, answer), MAX_CHARS, fill_from_teacher=True, progress=False
    )
    assert parts[bad].status == "teacher" and parts[bad].reason
    tagged = {f["id"] for f in filled["enriched_findings"] if triage_cli.TEACHER_TAG in f["tags"]}
    assert bad_ids - others <= tagged and enriched_report_error(filled) is None


def test_command_writes_the_report_its_part_log_and_the_agents_html(real_report, tmp_path, monkeypatch, capsys):
    pytest.importorskip("sys_scan_agent", reason="sys-scan-agent is not installed (make agent)")
    pairs = split_report(real_report, MAX_CHARS)
    model = ScriptedSpecialist(real_report, lambda i, teacher: compact(teacher) if i else "I cannot help")
    monkeypatch.setattr(triage_cli, "open_model", lambda *a, **k: model)
    report = tmp_path / "host.json"
    shutil.copy(real_report_paths()[0], report)
    out = tmp_path / "out" / "host.enriched.json"
    rc = triage_cli.main([str(report), "--model", "models/x", "--out", str(out), "--max-prompt-chars", str(MAX_CHARS)])
    assert rc == 1, "an invalid part makes the run fail even though the rest is written"
    printed = capsys.readouterr().out
    assert f"part 1/{len(pairs)}: invalid (not a JSON object)" in printed
    written = json.loads(out.read_text())
    assert enriched_report_error(written) is None
    record = written["enrichment_results"]["secml_triage"]
    assert record["complete"] is False and [p["status"] for p in record["parts"]][:2] == ["invalid", "valid"]
    assert len(written["raw_reference"]) == 64
    log = [json.loads(line) for line in out.with_name("host.enriched.parts.jsonl").read_text().splitlines()]
    assert log[0]["output"] == "I cannot help"
    from sys_scan_agent.models import EnrichedOutput

    EnrichedOutput.model_validate(written)
    assert "<html" in out.with_suffix(".html").read_text().lower()


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "report not found"),
        ("{not json", "not JSON"),
        ('{"meta": {"json_schema_version": "2"}}', "not a sys-scan v2 report"),
    ],
)
def test_bad_reports_are_one_line_errors(tmp_path, capsys, content, expected):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    assert triage_cli.main([str(path), "--model", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert expected in err and str(path) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: d / "missing", "model not found"),
        (lambda d: d, "no config.json or adapter_config.json"),
        (lambda d: (d / "w.bin").write_text("x") and d / "w.bin", "a model is a folder or a .gguf file"),
    ],
)
def test_bad_model_paths_are_one_line_errors(tmp_path, capsys, make, expected):
    model = make(tmp_path)
    assert triage_cli.main([str(real_report_paths()[0]), "--model", str(model), "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1


def test_parallel_copies_need_a_llama_cpp_model_and_a_positive_count(tiny_models, tmp_path, capsys):
    report = str(real_report_paths()[0])
    out = ["--out", str(tmp_path / "o.json"), "--max-prompt-chars", "6000"]
    assert triage_cli.main([report, "--model", str(tiny_models["llama"]), "--parallel", "0", *out]) == 2
    assert "--parallel 0: give 1 or more" in capsys.readouterr().err
    args = [report, "--model", str(tiny_models["llama"]), "--parallel", "2", "--backend", "transformers", *out]
    assert triage_cli.main(args) == 2
    err = capsys.readouterr().err
    assert "copies of a llama.cpp model" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_real_tiny_model_runs_end_to_end_and_its_garbage_is_reported(tiny_models, tmp_path, capsys):
    """A random tiny Llama through the real loader and generator: every part is judged, none is faked."""
    from secml_recipes.scan.generate import generate_report, plan_hosts

    report = tmp_path / "host.json"
    report.write_text(json.dumps(generate_report(next(iter(plan_hosts(1, 7))))))
    out = tmp_path / "host.enriched.json"
    rc = triage_cli.main(
        [
            str(report),
            "--model",
            str(tiny_models["llama"]),
            "--out",
            str(out),
            "--max-new-tokens",
            "8",
            "--max-prompt-chars",
            "60000",
            "--fill-from-teacher",
            "--no-html",
        ]
    )
    log = [json.loads(line) for line in out.with_name("host.enriched.parts.jsonl").read_text().splitlines()]
    assert rc == 0 and log and all(p["status"] == "teacher" and p["reason"] and p["output"] for p in log)
    written = json.loads(out.read_text())
    assert enriched_report_error(written) is None
    assert all(triage_cli.TEACHER_TAG in f["tags"] for f in written["enriched_findings"])


@pytest.mark.slow
def test_a_gguf_runs_through_transformers_with_its_source_tokenizer(tiny_models, llama_cpp_source, tmp_path, capsys):
    """A GGUF without llama.cpp built: transformers' GGUF reader, prompts tokenized by the source folder."""
    from secml_recipes.deploy.gguf import convert_to_gguf
    from secml_recipes.scan.generate import generate_report, plan_hosts

    gguf = convert_to_gguf(tiny_models["llama"], tmp_path / "specialist-f32.gguf", "f32")
    report = tmp_path / "host.json"
    report.write_text(json.dumps(generate_report(next(iter(plan_hosts(1, 7))))))
    out = tmp_path / "host.enriched.json"
    args = [str(report), "--model", str(gguf), "--backend", "transformers", "--tokenizer", str(tiny_models["llama"])]
    rc = triage_cli.main(args + ["--out", str(out), "--max-new-tokens", "4", "--max-prompt-chars", "60000"])
    log = [json.loads(line) for line in out.with_name("host.enriched.parts.jsonl").read_text().splitlines()]
    assert rc == 1 and log and all(p["status"] == "invalid" for p in log)
    assert "transformers rebuilds the tokenizer" not in capsys.readouterr().err


def test_reports_are_split_at_the_part_size_the_model_was_trained_on(small_corpus, tmp_path):
    """The part size comes from the training record beside the model, else its corpus' manifest, else the default."""
    recorded = tmp_path / "recorded"
    recorded.mkdir()
    (recorded / "secml_recipe.json").write_text(json.dumps({"corpus": {"max_prompt_chars": 2500}}))
    assert triage_cli.trained_part_size(recorded)[0] == 2500
    older = tmp_path / "older"  # trained before the record existed: its corpus is still there
    older.mkdir()
    (older / "secml_recipe.json").write_text(json.dumps({"resolved": {"dataset_path": str(small_corpus)}}))
    assert triage_cli.trained_part_size(older)[0] == 4000
    assert triage_cli.trained_part_size(older / "model-q4_K_M.gguf")[0] == 4000  # a GGUF beside its record
    size, why = triage_cli.trained_part_size(tmp_path / "nothing")
    assert size == triage_cli.DEFAULT_MAX_PROMPT_CHARS and "default" in why
