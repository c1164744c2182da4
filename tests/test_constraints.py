"""Constrained decoding: the decode-time schemas (tasks/constraints.py) and both runtimes (use/constrained.py)."""

import importlib.util
import json
import random
import re

import jsonschema
import pytest

from secml_recipes.families import get_family
from secml_recipes.families.toolcalls import parse_turn
from secml_recipes.scan.generate import generate_report, plan_hosts
from secml_recipes.tasks.constraints import (
    Constraint,
    enriched_schema_for_part,
    report_constraint,
    scan_values,
    tool_call_schema,
    tool_turn_constraint,
)
from secml_recipes.tasks.split import split_report
from secml_recipes.tasks.tools import TOOL_SCHEMAS
from secml_recipes.tasks.validate import enriched_report_error
from secml_recipes.use.constrained import lark_grammar, matcher
from secml_recipes.use.serve import request_constraint

HAS_LLAMA_CPP = importlib.util.find_spec("llama_cpp") is not None


@pytest.fixture(scope="module")
def parts():
    """(part, reference answer) pairs of a compromised host and a plain one, split small."""
    out = []
    for plan in plan_hosts(12, 5):
        report = generate_report(plan)
        out += split_report(report, 4000)
        if len(out) > 30:
            break
    return out


def _walk(schema):
    """Every sub-schema with its path."""
    stack = [((), schema)]
    while stack:
        path, node = stack.pop()
        yield path, node
        for key in ("properties",):
            for name, sub in (node.get(key) or {}).items():
                stack.append(((*path, name), sub))
        if isinstance(node.get("items"), dict):
            stack.append(((*path, "[]"), node["items"]))
        for sub in node.get("anyOf", []):
            stack.append((path, sub))


def test_finding_ids_are_the_parts_own_and_every_list_and_string_is_bounded(parts):
    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    schema = enriched_schema_for_part(part)
    own = [f["id"] for r in part["results"] for f in r["findings"]]
    findings = schema["properties"]["enriched_findings"]
    assert findings["items"]["properties"]["id"] == {"enum": own}
    assert findings["maxItems"] == len(own)
    for path, node in _walk(schema):
        assert "pattern" not in node and "$ref" not in node and "format" not in node, path
        if node.get("type") == "array":
            assert "maxItems" in node, path
        if node.get("type") == "string":
            assert "maxLength" in node, path
        if node.get("type") == "object":
            assert node["additionalProperties"] is False, path
            assert list(node["properties"]) == sorted(node["properties"]), "trained outputs have sorted keys"
    empty = {**part, "results": [{**r, "findings": []} for r in part["results"]]}
    assert enriched_schema_for_part(empty)["properties"]["enriched_findings"]["maxItems"] == 0


def test_enums_for_severities_risk_levels_and_references(parts):
    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    schema = enriched_schema_for_part(part)
    finding = schema["properties"]["enriched_findings"]["items"]["properties"]
    assert finding["severity"]["enum"] == ["info", "low", "medium", "high", "critical", "error"]
    assert finding["severity_source"]["enum"] == ["raw", "bumped", "rule_engine"]
    analyst = schema["properties"]["summaries"]["properties"]["analyst"]["properties"]
    assert analyst["risk_level"]["enum"] == ["low", "medium", "high", "critical"]
    refs = finding["correlation_refs"]["items"]["enum"]
    assert refs and all(r.startswith("corr:") for r in refs)
    techniques = schema["properties"]["summaries"]["properties"]["attack_coverage"]["properties"]["techniques"]
    assert "T1548.001" in techniques["items"]["enum"]
    assert "network_summary" not in schema["properties"]["reductions"]["properties"]  # open: left out


def test_every_reference_answer_is_allowed_and_foreign_ids_are_not(parts):
    for part, reference in parts:
        validator = jsonschema.Draft202012Validator(enriched_schema_for_part(part))
        assert not list(validator.iter_errors(reference)), part["meta"]["secml_part"]
    part, reference = next((p, r) for p, r in parts if r["enriched_findings"])
    validator = jsonschema.Draft202012Validator(enriched_schema_for_part(part))
    foreign = json.loads(json.dumps(reference))
    foreign["enriched_findings"][0]["id"] = "/not/in/this/part"
    assert not validator.is_valid(foreign)
    invented = json.loads(json.dumps(reference))
    invented["enriched_findings"][0]["cluster_id"] = 3  # a key of its own: refused
    assert not validator.is_valid(invented)
    looping = json.loads(json.dumps(reference))
    looping["summaries"]["analyst"]["risk_reasons"] = ["again"] * 50
    assert not validator.is_valid(looping)


def test_tool_arguments_are_limited_to_what_the_scan_holds():
    report = next(
        r for r in (generate_report(p) for p in plan_hosts(30, 11)) if any(x["scanner"] == "ioc" for x in r["results"])
    )
    values = scan_values(report)
    assert values["paths"] and values["pids"]
    schema = tool_call_schema(TOOL_SCHEMAS, report)
    by_name = {c["properties"]["name"]["const"]: c["properties"]["arguments"] for c in schema["anyOf"]}
    assert set(by_name) == {t["function"]["name"] for t in TOOL_SCHEMAS}
    assert by_name["hash_binary"]["properties"]["path"] == {"enum": values["paths"]}
    assert by_name["check_process_details"]["properties"]["pid"] == {"enum": values["pids"]}
    assert by_name["lookup_hash_reputation"]["properties"]["sha256"]["maxLength"] == 64
    validator = jsonschema.Draft202012Validator(schema)
    path = values["paths"][0]
    assert validator.is_valid({"name": "hash_binary", "arguments": {"path": path}})
    assert not validator.is_valid({"name": "hash_binary", "arguments": {"path": "/etc/shadow-not-scanned"}})
    assert not validator.is_valid({"name": "rm_rf", "arguments": {}})
    # A pid a tool result named becomes callable in the next turn.
    later = tool_turn_constraint(
        TOOL_SCHEMAS, report, get_family("qwen3").tool_format, [{"role": "tool", "content": '{"ppid": 4242}'}]
    )
    pids = next(c for c in later.schema["anyOf"] if c["properties"]["name"]["const"] == "check_process_details")
    assert 4242 in pids["properties"]["arguments"]["properties"]["pid"]["enum"]
    # Llama 3.1 writes `parameters`; Mistral calls carry ids.
    llama = tool_call_schema(TOOL_SCHEMAS, report, get_family("llama3").tool_format)
    assert all("parameters" in c["properties"] for c in llama["anyOf"])
    mistral = tool_call_schema(TOOL_SCHEMAS, report, get_family("mistral").tool_format)
    assert all(c["properties"]["id"]["maxLength"] == 9 for c in mistral["anyOf"])


def _random_walk(tokenizer, constraint, seed: int, limit: int = 20000) -> str:
    """Text sampled uniformly among the tokens the grammar allows at each step, until it may stop."""
    import numpy as np

    eos = [tokenizer.convert_tokens_to_ids(tokenizer.eos_token)]
    m = matcher(tokenizer, constraint, eos)
    rng, ids = random.Random(seed), []
    for _ in range(limit):
        bits = np.unpackbits(np.frombuffer(m.compute_bitmask(), dtype=np.uint8), bitorder="little")
        allowed = [int(i) for i in np.flatnonzero(bits[: len(tokenizer)])]
        assert allowed, m.get_error()
        token = rng.choice(allowed)
        if token in eos:
            break
        assert m.consume_token(token), m.get_error()
        ids.append(token)
    else:
        raise AssertionError("the grammar never let the walk stop")
    return tokenizer.decode(ids)


def test_sampled_reports_are_valid_for_the_project_and_for_sys_scan_agent(tiny_models, parts):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    own = {f["id"] for r in part["results"] for f in r["findings"]}
    for seed in range(2):
        text = _random_walk(tokenizer, report_constraint(part), seed)
        value = json.loads(text)
        assert enriched_report_error(value) is None
        assert {f["id"] for f in value["enriched_findings"]} <= own
        agent = pytest.importorskip("sys_scan_agent.models")
        agent.EnrichedOutput.model_validate(value)


@pytest.mark.parametrize("family", ["chatml", "llama3", "mistral", "gemma3"])
def test_sampled_tool_turns_parse_in_the_family_format(tiny_models, family):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    report = generate_report(next(iter(plan_hosts(3, 2))))
    fmt = get_family(family).tool_format
    turn = tool_turn_constraint(TOOL_SCHEMAS, report, fmt)
    declared = {t["function"]["name"]: t["function"]["parameters"] for t in TOOL_SCHEMAS}
    for seed in range(3):
        text = _random_walk(tokenizer, Constraint(turn.schema, fmt, max_calls=2), seed)
        parsed = parse_turn(fmt, text)
        assert parsed.malformed is None and parsed.calls, text
        for call in parsed.calls:
            jsonschema.validate(call["arguments"], declared[call["name"]])
    grammar = lark_grammar(turn)
    assert '"\\n" (calls | rest)' in grammar  # a final answer in plain text stays possible


def _accepts(tokenizer, constraint, text: str) -> bool:
    """Whether the llguidance matcher of `constraint` takes `text` whole and may stop after it."""
    from secml_recipes.use.constrained import _ll_tokenizer

    eos = [tokenizer.convert_tokens_to_ids(tokenizer.eos_token)]
    m = matcher(tokenizer, constraint, eos)
    ids = _ll_tokenizer(tokenizer, tuple(eos)).tokenize_str(text)  # the text's own bytes: no prefix space added
    return all(m.consume_token(t) for t in ids) and m.is_accepting()


def test_a_tool_turn_may_open_with_a_line_of_text_and_never_hides_a_call_in_text(tiny_models):
    """Training writes a line before the calls ("I ask the package manager.\n<tool_call>..."): the constraint takes
    it, checks the call after it, and refuses a call marker anywhere in text, where no schema would check it."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["llama"])
    report = generate_report(next(iter(plan_hosts(3, 2))))
    fmt = get_family("chatml").tool_format
    turn = tool_turn_constraint(TOOL_SCHEMAS, report, fmt)
    path = scan_values(report)["paths"][0]
    call = "<tool_call>\n" + json.dumps({"name": "stat_file", "arguments": {"path": path}}) + "\n</tool_call>"
    assert _accepts(tokenizer, turn, "Who owns it? I check the file.\n" + call)
    assert _accepts(tokenizer, turn, call)
    assert _accepts(tokenizer, turn, "The host is fine: no action.")  # a plain answer
    bad_call = call.replace(path, "/etc/not-in-the-scan")
    assert not _accepts(tokenizer, turn, "I check the file.\n" + bad_call)  # the call after the line is checked
    assert not _accepts(tokenizer, turn, "I check the file. " + bad_call)  # and cannot hide in a plain answer
    required = Constraint(turn.schema, fmt, max_calls=turn.max_calls)  # tool_choice "required": no plain answer
    assert _accepts(tokenizer, required, "I check the file.\n" + call)
    assert not _accepts(tokenizer, required, "The host is fine: no action.")
    answer = tool_turn_constraint(TOOL_SCHEMAS, report, fmt, tool_choice="none")  # an answer, no call
    assert _accepts(tokenizer, answer, "The host is fine.\nNo action.")
    assert not _accepts(tokenizer, answer, call) and not _accepts(tokenizer, answer, "I check the file.\n" + call)


# One closed field with an enum: what both backends must keep a random tiny model to.
RISK_LEVEL = Constraint(
    {
        "type": "object",
        "properties": {"risk_level": {"enum": ["low", "medium", "high", "critical"]}},
        "required": ["risk_level"],
        "additionalProperties": False,
    }
)


def test_transformers_backend_keeps_a_tiny_model_to_the_constraint(tiny_models):
    from secml_recipes.use.generation import TransformersGenerator

    generator = TransformersGenerator(str(tiny_models["llama"]), batch_size=2)
    prompt = generator.render([{"role": "user", "content": "How risky is this host?"}])
    verdict = RISK_LEVEL
    free, constrained = generator.generate([prompt, prompt], 24, constraint=[None, verdict])
    assert json.loads(constrained)["risk_level"] in ("low", "medium", "high", "critical")
    assert free != constrained
    report = generate_report(next(iter(plan_hosts(3, 2))))
    fmt = generator.family.tool_format
    call = Constraint(tool_call_schema(TOOL_SCHEMAS[:1], report, fmt), fmt)
    # a random model fills the 120-character query to its bound: room for it and the call's structure
    (text,) = generator.generate([prompt], 200, constraint=call)
    (parsed,) = parse_turn(generator.family.tool_format, text).calls
    assert parsed["name"] == "search_findings"


def test_serve_turns_response_format_and_tools_into_constraints():
    family = get_family("chatml")
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    assert request_constraint(family, [], None, fmt) == Constraint(schema)
    assert request_constraint(family, [], None, {"type": "json_object"}) == Constraint({"type": "object"})
    own_form = {"type": "json_object", "schema": schema}  # llama-cpp-python's, what the server rewrites OpenAI's to
    assert request_constraint(family, [], None, own_form) == Constraint(schema)
    assert request_constraint(family, [], None, None) is None
    messages = [{"role": "user", "content": "Check /usr/bin/su and pid 77."}]
    tools = request_constraint(family, messages, TOOL_SCHEMAS, None)
    assert tools.tool_format == family.tool_format and tools.or_text
    paths = next(c for c in tools.schema["anyOf"] if c["properties"]["name"]["const"] == "stat_file")
    assert paths["properties"]["arguments"]["properties"]["path"] == {"enum": ["/usr/bin/su"]}
    assert not request_constraint(family, messages, TOOL_SCHEMAS, None, "required").or_text
    answer_only = request_constraint(family, messages, TOOL_SCHEMAS, None, "none")  # OpenAI's: the model answers
    assert answer_only.or_text and not answer_only.calls
    from secml_recipes.tasks.constraints import stops_when_looping

    # a loop may end a free or answer-only turn early, never one that may still be writing a call or JSON
    assert stops_when_looping(None) and stops_when_looping(answer_only) and not stops_when_looping(tools)
    with pytest.raises(ValueError, match="schema"):
        request_constraint(family, [], None, {"type": "json_schema", "json_schema": {"name": "x"}})


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (make llama-cpp builds it)")
def test_llama_cpp_grammars_compile_for_reports_and_every_family(parts):
    from secml_recipes.use.constrained import gbnf_grammar, llama_grammar

    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    assert llama_grammar(report_constraint(part)) is not None
    report = generate_report(next(iter(plan_hosts(3, 2))))
    for family in ("chatml", "llama3", "mistral", "gemma3"):
        turn = tool_turn_constraint(TOOL_SCHEMAS, report, get_family(family).tool_format)
        grammar = gbnf_grammar(turn)
        assert 'root ::= calls | line ("\\n" (calls | rest))?' in grammar
        assert llama_grammar(turn) is not None


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (make llama-cpp builds it)")
def test_llama_cpp_backend_keeps_a_tiny_gguf_to_the_constraint(tiny_models, llama_cpp_source, tmp_path, parts):
    from secml_recipes.deploy.gguf import convert_to_gguf
    from secml_recipes.use.generation import LlamaCppGenerator

    gguf = convert_to_gguf(tiny_models["llama"], tmp_path / "tiny-f32.gguf", "f32")
    generator = LlamaCppGenerator(str(gguf), str(tiny_models["llama"]), n_ctx=2048)
    # llama.cpp itself parses every report grammar: the real fixture's parts at both profiles' sizes, generated parts
    from secml_recipes.scan.fixtures import real_reports
    from secml_recipes.tasks.split import split_prompts
    from secml_recipes.use.constrained import llama_grammar

    fixture = next(real_reports())
    raws = [p for size in (2500, 12000) for p, _ in split_prompts(fixture, size)] + [p for p, _ in parts]
    assert all(llama_grammar(report_constraint(raw), generator.llm) is not None for raw in raws)
    with pytest.raises(ValueError, match="llama.cpp refuses"):
        llama_grammar(Constraint({"enum": []}), generator.llm)
    prompt = generator.render([{"role": "user", "content": "How risky is this host?"}])
    verdict = RISK_LEVEL
    (text,) = generator.generate([prompt], 24, constraint=verdict)
    assert json.loads(text)["risk_level"] in ("low", "medium", "high", "critical")
    report = generate_report(next(iter(plan_hosts(3, 2))))
    stat = [t for t in TOOL_SCHEMAS if t["function"]["name"] == "stat_file"]
    call = Constraint(tool_call_schema(stat, report), generator.family.tool_format)
    (text,) = generator.generate([prompt], 200, constraint=call)
    (parsed,) = parse_turn(generator.family.tool_format, text).calls
    assert parsed["name"] == "stat_file" and parsed["arguments"]["path"] in scan_values(report)["paths"]


def test_long_string_bounds_become_placeholders(parts):
    """Every string bound over llama.cpp's nesting limit is taken out of the schema as a (min, max) placeholder, so
    the grammar can spell it in chunks; the measured bounds of the prose fields are among them."""
    from secml_recipes.use.constrained import LLAMA_CPP_MAX_LENGTH, long_strings_as_placeholders

    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    schema, bounds = long_strings_as_placeholders(report_constraint(part).schema)
    assert {(1, 730), (1, 740), (0, 400)} <= bounds
    assert all(longest > 64 for _, longest in bounds)
    kept = [int(n) for n in re.findall(r'"maxLength": (\d+)', json.dumps(schema))]
    assert all(n <= LLAMA_CPP_MAX_LENGTH for n in kept)


def test_bounded_numbers_become_rules_of_their_values(parts):
    """llama-cpp-python's converter drops minimum/maximum (a model wrote a risk score of 195): every closed whole
    bound becomes a placeholder, and its rule admits exactly the values in range."""
    from secml_recipes.use.constrained import _number_rule, bounded_numbers_as_placeholders

    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    schema, numbers = bounded_numbers_as_placeholders(report_constraint(part).schema)
    assert {("integer", 0, 100), ("number", 0, 1), ("number", 0, 10)} <= numbers
    assert '"maximum"' not in json.dumps(schema)
    assert bounded_numbers_as_placeholders({"type": "integer", "minimum": 0})[1] == set()
    rule = _number_rule(("integer", 0, 100))
    assert rule.endswith('| "99" | "100") space') and '"101"' not in rule and '"-"' not in rule
    assert _number_rule(("integer", -100, 100)).startswith('integer-minus-100-100 ::= "-"? ("0" |')
    assert _number_rule(("integer", 0, 100000)) == 'integer-0-100000 ::= ("0" | [1-9] [0-9]{0,4} | "100000") space'
    assert _number_rule(("number", 0, 1)) == 'number-0-1 ::= (("0") ("." [0-9]{1,4})? | "1" ".0"?) space'


@pytest.mark.skipif(not HAS_LLAMA_CPP, reason="llama-cpp-python is not installed (make llama-cpp builds it)")
def test_llama_cpp_grammars_bound_every_long_string_and_refuse_raw_control_characters(parts):
    """llama.cpp spells a bound of n characters as n nested rules and refuses more than 2,000: a long bound becomes
    40-character chunks (at most `bound` characters), and a string character is never a raw control character
    (json.loads refuses those)."""
    from secml_recipes.use.constrained import gbnf_grammar, long_strings_as_placeholders

    part, _ = next((p, r) for p, r in parts if r["enriched_findings"])
    constraint = report_constraint(part)
    _, bounds = long_strings_as_placeholders(constraint.schema)
    assert {(1, 730), (1, 740), (0, 400)} <= bounds
    grammar = gbnf_grammar(constraint)
    assert "@@" not in grammar
    rules = dict(line.split(" ::= ", 1) for line in grammar.splitlines())
    for shortest, longest in bounds:
        body = rules[f"string-{shortest}-{longest}"]
        assert (f"char{{{shortest}}} " in body) == (shortest > 0)
        chunks = int(body.split("chunk-40{0,")[1].split("}")[0])
        assert shortest + 40 * chunks + 39 <= longest < shortest + 40 * (chunks + 1) + 39, (shortest, longest)
    assert rules["chunk-40"] == "char{40}"
    assert rules["char"].startswith(r'[^"\\\x7F\x00-\x1F]')
    assert "string-0-400" in rules["enriched-findings-item-0-rationale-item"]
    assert rules["enriched-findings-item-0-risk-score"] == "integer-0-100" and "integer-0-100" in rules


def test_a_list_whose_items_no_value_fits_is_empty():
    """A part whose host offers no correlation id (no finding a rule could join) allows no correlation at all,
    rather than an object with an id from an empty set, which no value fits and llama.cpp refuses as a rule."""
    report = generate_report(next(iter(plan_hosts(3, 2))))
    part = {**report, "results": [{**r, "findings": []} for r in report["results"]]}
    part["meta"] = {**part["meta"], "secml_context": {}}
    schema = enriched_schema_for_part(part)
    assert schema["properties"]["correlations"]["maxItems"] == 0
    assert schema["properties"]["enriched_findings"]["maxItems"] == 0
