"""Constrained decoding in both runtimes: a `tasks.constraints.Constraint` becomes a grammar the model cannot leave.

transformers: llguidance (docs/using-models.md, "Constrained decoding", says why this library) compiles the
constraint, as a Lark grammar with embedded JSON schemas, against the model's tokenizer; `GrammarLogitsProcessor`
masks every token the grammar does not allow, one matcher per row of the batch. llama.cpp: the same constraint
becomes a GBNF grammar (llama.cpp's own JSON-schema converter for the JSON, the family's call markers as
literals) that `Llama.generate` enforces. Both read the one constraint, so the two runtimes allow the same text.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import torch

from secml_recipes.tasks.constraints import Constraint
from secml_recipes.use.loops import CLOSE_PERIOD, CLOSE_WINDOW, closer_boost, hf_closer_tokens

# Reports are trained as compact JSON: no whitespace. Tool calls are trained as `{"name": "x", "arguments": {...}}`:
# at most one space between tokens. Either way whitespace is bounded, so it cannot run on forever.
_JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}
_CALL_OPTIONS = {"whitespace_pattern": "[ ]?"}
LLAMA_CPP_MAX_LENGTH = 64  # longest string bound spelled by llama.cpp's converter (long_strings_as_placeholders)


def _lark_literal(text: str, specials: set[str]) -> str:
    """`text` in Lark: a special token of the tokenizer as a token reference, else a quoted string."""
    return text if text in specials else json.dumps(text)


def _more(item: str, most: int) -> str:
    """`item` repeated up to `most` times (both grammar dialects write it so), nothing when `most` is 0."""
    return f" ({item}){{0,{most}}}" if most > 0 else ""


def _escaped(chars: str) -> str:
    """`chars` escaped for a character class body (Lark regex and GBNF alike)."""
    return "".join("\\" + c if c in "[]\\^-/" else c for c in chars)


def _not_first(marker: str) -> str:
    """A character class body of what text before the calls, or a plain answer, may not begin with: a call marker or
    bare JSON."""
    return _escaped("".join(sorted({marker[0], "{", "["})))


def lark_grammar(constraint: Constraint, specials: set[str] = frozenset()) -> str:
    """The llguidance Lark grammar of `constraint` (`specials`: the tokenizer's special tokens, which the call
    markers of some families are, e.g. Llama's <|python_tag|>)."""
    fmt = constraint.tool_format
    options = _CALL_OPTIONS if fmt else _JSON_OPTIONS
    value = "%json " + json.dumps({**constraint.schema, "x-guidance": options})
    if fmt is None:
        return f"start: {value}\n"
    lit = lambda s: _lark_literal(s, specials)  # noqa: E731
    more = constraint.max_calls - 1
    if fmt.kind == "tagged":
        block = f'{lit(fmt.open)} "\\n" call "\\n" {lit(fmt.close)}'
        calls = "block" + _more('"\\n" block', more)
        rules = f"block: {block}\n"
    elif fmt.kind == "json_list":
        calls = f'{lit(fmt.open)} " "? "[" call' + _more('", " call', more) + ' "]"'
        rules = ""
    elif fmt.kind == "json_objects":
        calls = f"{lit(fmt.open)} call" + _more(f"{json.dumps(fmt.separator)} call", more)
        rules = ""
    elif fmt.kind == "fenced":
        calls = f'{lit(fmt.open)} "\\n" (call "\\n"){{1,{more + 1}}} {lit(fmt.close)}'
        rules = ""
    else:
        raise ValueError(f"unknown tool-call format kind {fmt.kind!r}")
    start, first, body = _turn_shape(constraint)
    line = f"line: /[^{first}\\s][^{body}\\n]{{0,{constraint.lead_chars - 1}}}/\n"
    rest = f"rest: /[^{body}]+/\n" if constraint.or_text else ""
    return f"start: {start}\ncalls: {calls}\n{rules}call: {value}\n{line}{rest}"


def _turn_shape(constraint: Constraint) -> tuple[str, str, str]:
    """(start rule, character class body of what `line` may not begin with, of what text may not hold) of a tool
    turn, for both grammar dialects. A turn may open with a line of text before its calls (what training writes:
    "I ask the package manager.\n" then the call); with `or_text` that line may instead go on as a plain answer
    (with tool_choice "none" it must). Neither may begin as a call block would (marker or bare JSON) nor hold the
    marker at all, so no call hides in text the grammar does not check. One line, then calls or the rest: each step
    is told apart by its first character, so llguidance's lexer never holds two readings of the same text."""
    start = {
        "auto": 'calls | line ("\\n" (calls | rest))?',
        "required": 'calls | line "\\n" calls',
        "none": 'line ("\\n" rest)?',
    }[constraint.tool_choice]
    marker = constraint.tool_format.open
    return start, _not_first(marker), _escaped(marker[0])


@lru_cache(maxsize=8)
def _ll_tokenizer(tokenizer, eos: tuple[int, ...]):
    """llguidance's view of a transformers tokenizer (about a second to build: once per tokenizer)."""
    # lazy: optional runtime dependency, loaded only when a constraint is used
    import llguidance.hf

    return llguidance.hf.from_tokenizer(tokenizer, n_vocab=len(tokenizer), eos_token=list(eos))


def matcher(tokenizer, constraint: Constraint, eos: list[int]):
    """An llguidance matcher of `constraint` for `tokenizer`; ValueError naming the problem when it does not compile."""
    # lazy: optional runtime dependency, loaded only when a constraint is used
    import llguidance

    specials = set(tokenizer.all_special_tokens) | {
        t.content for t in tokenizer.added_tokens_decoder.values() if t.special
    }
    m = llguidance.LLMatcher(_ll_tokenizer(tokenizer, tuple(eos)), lark_grammar(constraint, specials), log_level=0)
    if m.is_error():
        raise ValueError(f"constraint does not compile: {m.get_error()}")
    return m


class GrammarLogitsProcessor:
    """A transformers logits processor that allows, for each row of the batch, only the tokens its constraint's
    grammar accepts next (None: that row is free). Rows are told apart by position; generation is left-padded."""

    def __init__(self, tokenizer, constraints: list[Constraint | None], eos: list[int]):
        self.matchers = [matcher(tokenizer, c, eos) if c is not None else None for c in constraints]
        self.closing = [c is not None and c.closes_loops for c in constraints]  # the rows `closer_boost` serves
        self.eos = eos
        self.prompt_len: int | None = None
        self.vocab = len(tokenizer)
        self.closers = hf_closer_tokens(tokenizer)
        self.tokenizer = tokenizer

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        elif input_ids.shape[1] > self.prompt_len:
            last = input_ids[:, -1].tolist()
            for m, token in zip(self.matchers, last):
                if m is not None and not m.is_stopped():
                    m.consume_token(token)
            recent = input_ids[:, max(self.prompt_len, input_ids.shape[1] - CLOSE_WINDOW - CLOSE_PERIOD) :].tolist()
            closer_boost(
                [ids if closing else [] for ids, closing in zip(recent, self.closing)],
                self.closers,
                scores,
                lambda row: self.tokenizer.decode(input_ids[row, self.prompt_len :].tolist()),
                self.tokenizer.decode,
            )
        for row, m in enumerate(self.matchers):
            if m is None:
                continue
            if m.is_stopped() or m.is_error():
                allowed = np.zeros(scores.shape[1], dtype=bool)
                allowed[self.eos] = True
            else:
                bits = np.frombuffer(m.compute_bitmask(), dtype=np.uint8)
                allowed = np.unpackbits(bits, bitorder="little")[: scores.shape[1]].astype(bool)
                if len(allowed) < scores.shape[1]:
                    allowed = np.pad(allowed, (0, scores.shape[1] - len(allowed)))
            scores[row, torch.from_numpy(~allowed)] = float("-inf")
        return scores


# --- llama.cpp ------------------------------------------------------------------------------------------------------


def in_written_order(schema):
    """`schema` with every object whose optional keys sort before a required one split into one variant per subset
    of those keys (all required): llama.cpp's converter writes required keys before optional ones, while the
    constraint's key order is the order training wrote (sorted), so without this a trained model would be pushed off
    its own order (`allowlist_reason` before `category`, `attack_coverage` before `executive_summary`)."""
    if isinstance(schema, list):
        return [in_written_order(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: in_written_order(v) for k, v in schema.items()}
    props, required = out.get("properties"), out.get("required", [])
    if not props or not required:
        return out
    last_required = max(list(props).index(k) for k in required)
    early = [k for k in list(props)[:last_required] if k not in required]
    if not early:
        return out
    variants = []
    for mask in range(1 << len(early)):
        kept = [k for i, k in enumerate(early) if mask >> i & 1]
        keys = [k for k in props if k not in early or k in kept]
        variant = {**out, "properties": {k: props[k] for k in keys}}
        variant["required"] = [k for k in keys if k in required or k in kept]
        variants.append(variant)
    return {"anyOf": variants}


def _replace_nodes(schema, replace):
    """`schema` with every node that `replace(node)` answers (not None) replaced by that answer, depth first."""

    def walk(node):
        if isinstance(node, list):
            return [walk(n) for n in node]
        if not isinstance(node, dict):
            return node
        replacement = replace(node)
        return replacement if replacement is not None else {k: walk(v) for k, v in node.items()}

    return walk(schema)


def long_strings_as_placeholders(schema, longest: int = LLAMA_CPP_MAX_LENGTH):
    """(`schema` with every string bounded above `longest` characters replaced by a placeholder constant, the
    (shortest, longest) bounds replaced), and every list that must stay empty spelled `[]`. llama.cpp's JSON-schema
    converter spells a bound of n characters as n nested
    optional rules, and llama.cpp's grammar parser refuses a repetition past 2,000 rules: `gbnf_grammar` swaps each
    placeholder for a rule of bounded 40-character chunks instead (`_long_string_rule`), so every bound holds in
    both runtimes."""
    bounds: set[tuple[int, int]] = set()

    def replace(node):
        if node.get("type") == "array" and node.get("maxItems") == 0:
            return {"const": []}  # its items may be `{"enum": []}`, which the converter writes as an empty rule
        plain = set(node) <= {"type", "maxLength", "minLength"} and node.get("minLength", 0) <= longest
        if node.get("type") == "string" and node.get("maxLength", 0) > longest and plain:
            bound = (node.get("minLength", 0), node["maxLength"])
            bounds.add(bound)
            return {"const": _placeholder(bound)}
        return None

    return _replace_nodes(schema, replace), bounds


def _placeholder(bound: tuple[int, int]) -> str:
    return f"@@secml-string-{bound[0]}-{bound[1]}@@"


def _rule_name(bound: tuple[int, int]) -> str:
    return f"string-{bound[0]}-{bound[1]}"


# A JSON string character as strict parsers read it: no raw control character (llama-cpp-python's converter allows
# them, and `json.loads` then refuses a newline a model wrote inside a string).
_STRICT_CHAR = r'char ::= [^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
_CHUNK = 40


def _long_string_rule(bound: tuple[int, int]) -> str:
    """A JSON string of `bound` = (shortest, longest) characters in few rules: the shortest, then up to k whole
    chunks of 40 characters, then up to 39 more (llama.cpp expands a fixed count in place and an optional one into
    one rule per step)."""
    shortest, longest = bound
    chunks = (longest - shortest - (_CHUNK - 1)) // _CHUNK
    head = f" char{{{shortest}}}" if shortest else ""
    return f'{_rule_name(bound)} ::= "\\""{head} chunk-{_CHUNK}{{0,{chunks}}} char{{0,{_CHUNK - 1}}} "\\"" space'


def bounded_numbers_as_placeholders(schema) -> tuple[object, set[tuple[str, int, int]]]:
    """(`schema` with every integer or number bounded by whole `minimum` and `maximum` that `_number_rule` spells
    replaced by a placeholder constant, the (type, minimum, maximum) bounds replaced). llama-cpp-python's converter
    drops numeric bounds (a model under it wrote `"risk_score": 195` against a maximum of 100); `gbnf_grammar` spells
    each as a rule of the allowed values instead (`_number_rule`). Open bounds (`minimum` only) stay as the converter
    has them."""
    bounds: set[tuple[str, int, int]] = set()

    def whole(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer()

    def replace(node):
        lo, hi = node.get("minimum"), node.get("maximum")
        plain = set(node) <= {"type", "minimum", "maximum"} and node.get("type") in ("integer", "number")
        if plain and whole(lo) and whole(hi) and _spellable(node["type"], int(lo), int(hi)):
            bound = (node["type"], int(lo), int(hi))
            bounds.add(bound)
            return {"const": _number_placeholder(bound)}
        return None

    return _replace_nodes(schema, replace), bounds


def _spellable(kind: str, lo: int, hi: int) -> bool:
    """Bounds `_number_rule` spells: [lo, hi] within [0, 1000]; an integer also in [0, 10^k] or [-hi, hi]."""
    if 0 <= lo <= hi <= 1000:
        return True
    top = str(hi)
    power = hi >= 10 and top == "1" + "0" * (len(top) - 1)
    return kind == "integer" and (lo == 0 or lo == -hi) and (hi <= 1000 or power)


def _number_placeholder(bound: tuple[str, int, int]) -> str:
    return f"@@secml-{bound[0]}-{bound[1]}-{bound[2]}@@"


def _number_rule_name(bound: tuple[str, int, int]) -> str:
    return f"{bound[0]}-{bound[1]}-{bound[2]}".replace("--", "-minus-")


def _number_rule(bound: tuple[str, int, int]) -> str:
    """Every value in [minimum, maximum]: whole numbers as literals up to 1,000 (up to 10^k as digit patterns without
    leading zeros), a leading "-" for a range symmetric around 0; a number also takes up to 4 decimals below the
    maximum, and the maximum itself only as `max` or `max.0`."""
    kind, lo, hi = bound
    start = max(lo, 0)
    if hi > 1000:  # [0, 10^k]
        values = f'"0" | [1-9] [0-9]{{0,{len(str(hi)) - 2}}} | "{hi}"'
    else:
        below = " | ".join(f'"{v}"' for v in range(start, hi))
        if kind == "integer":
            values = f'{below} | "{hi}"' if below else f'"{hi}"'
        else:
            fraction = '("." [0-9]{1,4})?'
            values = f'({below}) {fraction} | "{hi}" ".0"?' if below else f'"{hi}" ".0"?'
    sign = '"-"? ' if lo < 0 else ""
    return f"{_number_rule_name(bound)} ::= {sign}({values}) space"


def _gbnf_literal(text: str) -> str:
    return json.dumps(text)


def gbnf_grammar(constraint: Constraint) -> str:
    """The llama.cpp GBNF grammar of `constraint`: llama.cpp's converter for the JSON schema, the family's markers
    as literals around it."""
    # lazy: optional, built by `make llama-cpp`
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    fmt = constraint.tool_format
    schema, bounds = long_strings_as_placeholders(in_written_order(constraint.schema))
    schema, numbers = bounded_numbers_as_placeholders(schema)
    value = json_schema_to_gbnf(json.dumps(schema), prop_order=None)
    lines = [line for line in value.splitlines() if not line.startswith(("char ::=", "space ::="))]
    spelled = [(_placeholder(b), _rule_name(b), _long_string_rule(b)) for b in sorted(bounds)]
    spelled += [(_number_placeholder(b), _number_rule_name(b), _number_rule(b)) for b in sorted(numbers)]
    for placeholder, name, rule in spelled:  # each placeholder constant, as the converter wrote it, becomes its rule
        literal = _gbnf_literal(json.dumps(placeholder))
        lines = [line.replace(literal, name) for line in lines] + [rule]
    if bounds:
        lines.append(f"chunk-{_CHUNK} ::= char{{{_CHUNK}}}")
    value = "\n".join([*lines, _STRICT_CHAR, 'space ::= " "?'])
    if fmt is None:
        return value
    value = value.replace("root ::=", "call ::=", 1)
    lit = _gbnf_literal
    more = constraint.max_calls - 1
    if fmt.kind == "tagged":
        calls = "block" + _more('"\\n" block', more)
        calls += f'\nblock ::= {lit(fmt.open)} "\\n" call "\\n" {lit(fmt.close)}'
    elif fmt.kind == "json_list":
        calls = f'{lit(fmt.open)} " "? "[" call' + _more('", " call', more) + ' "]"'
    elif fmt.kind == "json_objects":
        calls = f"{lit(fmt.open)} call" + _more(f"{lit(fmt.separator)} call", more)
    elif fmt.kind == "fenced":
        calls = f'{lit(fmt.open)} "\\n" (call "\\n"){{1,{more + 1}}} {lit(fmt.close)}'
    else:
        raise ValueError(f"unknown tool-call format kind {fmt.kind!r}")
    start, first, body = _turn_shape(constraint)
    line = f"line ::= [^{first} \\t\\n] [^{body}\\n\\x00]{{0,{constraint.lead_chars - 1}}}\n"
    rest = f"rest ::= [^{body}\\x00]+\n" if constraint.or_text else ""
    return f"root ::= {start}\ncalls ::= {calls}\n{line}{rest}{value}"


def llama_grammar(constraint: Constraint, llm=None):
    """A `llama_cpp.LlamaGrammar` of `constraint`. With the `Llama` it is for, the grammar is first parsed by llama.cpp
    itself: llama-cpp-python defers parsing to the sampler, and a grammar llama.cpp refuses (an empty rule, a
    repetition past its limit) must fail here with its reason, not leave an answer unconstrained."""
    # lazy: optional, built by `make llama-cpp`
    import llama_cpp
    from llama_cpp import LlamaGrammar

    text = gbnf_grammar(constraint)
    if llm is not None:
        sampler = llama_cpp.llama_sampler_init_grammar(
            llama_cpp.llama_model_get_vocab(llm.model), text.encode(), b"root"
        )
        if not sampler:
            raise ValueError(
                "llama.cpp refuses the constraint's grammar (run with verbose llama.cpp logs for the rule)"
            )
        llama_cpp.llama_sampler_free(sampler)
    return LlamaGrammar.from_string(text, verbose=False)
