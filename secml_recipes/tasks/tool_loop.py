"""One step of the generalist's tool loop, shared by the evaluation's rollouts and the `agent` command: read the
model's output in its family's tool-call format, run each call only when its tool is declared and its arguments fit
the tool's schema, and append the assistant turn and the tool results to the conversation. Text inside the report
or a tool result is never executed, so an instruction injected into the scan cannot add a tool run."""

from __future__ import annotations

from dataclasses import dataclass, field

import jsonschema

from secml_recipes.families import ChatFamily, ParsedTurn, canonical_arguments
from secml_recipes.tasks.tools import ToolError, tool_result_text


def declared_schemas(tools: list[dict]) -> dict[str, dict]:
    """{tool name: its parameters' JSON schema} of OpenAI-style tool declarations."""
    return {t["function"]["name"]: t["function"]["parameters"] for t in tools}


def parse_assistant_output(text: str, family: ChatFamily) -> ParsedTurn:
    """Split an assistant output into text and tool calls in `family`'s format (families/toolcalls.py)."""
    return family.parse_tool_calls(text)


def execute_call(call: dict, declared: dict[str, dict], env) -> tuple[dict, dict]:
    """(result, record) of one parsed call: run by `env.call` only when its tool is declared and its arguments
    fit the tool's schema; otherwise the result is an error the model sees. The record says which."""
    record = {
        "name": call["name"],
        "arguments": call["arguments"],
        "declared": call["name"] in declared,
        "valid_args": False,
        "error": None,
    }
    if not record["declared"]:
        record["error"] = "undeclared"
        return {"error": f"unknown tool '{call['name']}'"}, record
    try:
        jsonschema.validate(call["arguments"], declared[call["name"]])
        record["valid_args"] = True
        return env.call(call["name"], call["arguments"]), record
    except (jsonschema.ValidationError, ToolError) as err:
        record["error"] = "invalid_arguments"
        return {"error": f"invalid arguments: {getattr(err, 'message', err)}"}, record


@dataclass
class Step:
    """What one model output did: `final` (an answer), `malformed` (an unreadable call block: the loop ends without
    an answer) or calls, each with its record and result text, already appended to the conversation."""

    turn: ParsedTurn
    final: str | None = None
    malformed: str | None = None
    records: list[dict] = field(default_factory=list)
    results: list[str] = field(default_factory=list)

    @property
    def ended(self) -> bool:
        return self.final is not None or self.malformed is not None


def take_step(messages: list[dict], text: str, family: ChatFamily, declared: dict[str, dict], env, step: int) -> Step:
    """Apply one assistant output to `messages` (in place) and run its calls against `env`."""
    turn = parse_assistant_output(text, family)
    if turn.malformed is not None:
        messages.append({"role": "assistant", "content": text})
        return Step(turn, malformed=turn.malformed)
    if turn.is_final:
        messages.append({"role": "assistant", "content": turn.content})
        return Step(turn, final=turn.content)
    outcome = Step(turn)
    tool_calls, tool_messages = [], []
    for k, call in enumerate(turn.calls):
        call_id = call["id"] or f"call_{step}_{k}"
        result, record = execute_call(call, declared, env)
        text_result = tool_result_text(result)
        outcome.records.append(record)
        outcome.results.append(text_result)
        tool_calls.append(
            {
                "id": call_id,
                "type": "function",
                "function": {"name": call["name"], "arguments": canonical_arguments(call["arguments"])},
            }
        )
        tool_messages.append({"role": "tool", "tool_call_id": call_id, "name": call["name"], "content": text_result})
    messages.append({"role": "assistant", "content": turn.content, "tool_calls": tool_calls})
    messages.extend(tool_messages)
    return outcome


def _calls_of(message: dict) -> list[tuple[str, str]]:
    return [
        (c["function"]["name"], canonical_arguments(c["function"]["arguments"]))
        for c in message.get("tool_calls") or []
    ]


def only_repeats(messages: list[dict]) -> bool:
    """Whether the last assistant turn of `messages` only made calls the conversation had already made (same tool,
    same arguments): their results are already there, so another turn of the loop can learn nothing new from them."""
    turns = [m for m in messages if m.get("role") == "assistant"]
    if not turns or not _calls_of(turns[-1]):
        return False
    before = {call for m in turns[:-1] for call in _calls_of(m)}
    return all(call in before for call in _calls_of(turns[-1]))


def turn_tool_choice(
    messages: list[dict], turn: int, max_turns: int, first: str = "auto", conclude: bool = True
) -> str:
    """The tool_choice of a constrained tool loop's turn `turn` (0-based) of `max_turns` after `messages`: `first`
    on the first turn; with `conclude`, "none" (the answer, no call) on the last turn and after a turn that `only
    repeats` calls already made, as agent frameworks end a loop that runs out of steps with a generated answer
    (LangChain's early_stopping_method "generate") instead of cutting it off; "auto" otherwise."""
    if conclude and turn > 0 and (turn == max_turns - 1 or only_repeats(messages)):
        return "none"
    return first if turn == 0 else "auto"
