"""A sys-scan-agent LLM provider backed by a trained specialist (`pip install -e '.[agent]'`, `make agent`).

sys-scan-agent 7.0.0 asks its provider (`sys_scan_agent.llm_provider.ILLMProvider`) for three things, each
returned with a `ProviderMetadata`: `summarize` (the host's `Summaries`), `triage` (top findings) and
`refine_rules` (rule suggestions). Its provider calls carry reductions and correlations, not the raw report, while
the specialist was trained on the raw report; so the provider is given the report (`attach_report`), runs the
specialist on it once (`triage.triage`: split, generate, validate, merge) and answers every call from that
enrichment. Every answer's metadata names the model (`model_name` = the path it was loaded from, `provider_name`
= "secml-recipes"). Where the model has nothing valid to say (no report attached, every part invalid) the
agent's own heuristic answers and the metadata says so (`fallback=True`, `error_message` with the reason); rule
refinement is always the heuristic's (no model is trained for it), marked the same way.

    from sys_scan_agent.llm_provider import set_llm_provider
    set_llm_provider(SecmlProvider("models/specialist_model", report=json.load(open("report.json"))))
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from secml_recipes.use.generation import open_model
from secml_recipes.use.triage import trained_part_size, triage

PROVIDER_NAME = "secml-recipes"
TOP_FINDINGS = 5


class _Counting:
    """A generator wrapper that counts prompt and completion tokens for the provider's metadata."""

    def __init__(self, generator):
        self.inner, self.name, self.family = generator, generator.name, generator.family
        self.tokens_prompt = self.tokens_completion = 0

    def render(self, messages, tools=None):
        return self.inner.render(messages, tools)

    def generate(self, prompts, max_new_tokens, **constraint):
        tokenizer = getattr(self.inner, "tokenizer", None)
        if tokenizer is not None:
            self.tokens_prompt += sum(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts)
        outputs = self.inner.generate(prompts, max_new_tokens, **constraint)
        if tokenizer is not None:
            self.tokens_completion += sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs)
        return outputs


class SecmlProvider:
    """`ILLMProvider` answered by a trained specialist (module docstring). `generator` replaces loading
    `model` (tests, or a model already in memory); every call's metadata is kept in `calls`."""

    def __init__(
        self,
        model: str,
        report: dict | None = None,
        max_prompt_chars: int | None = None,
        max_new_tokens: int = 4096,
        generator=None,
        constrain: bool = True,
        **open_kwargs: Any,
    ):
        # lazy: optional (make agent)
        from sys_scan_agent.llm_provider import NullLLMProvider

        self.model_name, self.report = str(model), report
        # None: split reports as the model's training corpus did (triage.trained_part_size)
        self.max_prompt_chars = max_prompt_chars or trained_part_size(model, open_kwargs.get("tokenizer"))[0]
        self.max_new_tokens = max_new_tokens
        self.constrain = constrain  # decode each part under its enriched-report constraint (tasks/constraints.py)
        self._generator, self._open_kwargs = generator, open_kwargs
        self._heuristic = NullLLMProvider()
        self._result: tuple[dict | None, list, float] | None = None
        self.calls: list = []

    def attach_report(self, report: dict) -> None:
        """The raw report the next calls are about (the enrichment is recomputed)."""
        self.report, self._result = report, None

    def load(self) -> _Counting:
        """The model, loaded once (a bad path fails here, before anything asks the provider)."""
        if not isinstance(self._generator, _Counting):
            if self._generator is None:
                self._generator = open_model(self.model_name, **self._open_kwargs)
            self._generator = _Counting(self._generator)
        return self._generator

    def enrichment(self) -> tuple[dict | None, str | None]:
        """(the specialist's merged enriched report or None, why it is missing or incomplete)."""
        if self.report is None:
            return None, "no report attached (SecmlProvider(report=...) or attach_report)"
        if self._result is None:
            t0 = time.perf_counter()
            enriched, parts = triage(
                self.report, self.load(), self.max_prompt_chars, self.max_new_tokens, constrain=self.constrain
            )
            self._result = enriched, parts, time.perf_counter() - t0
        enriched, parts, _ = self._result
        invalid = [p for p in parts if p.status != "valid"]
        if enriched is None:
            return (
                None,
                f"the specialist wrote no valid part ({len(invalid)} of {len(parts)} invalid: {invalid[0].reason})",
            )
        return enriched, (f"{len(invalid)} of {len(parts)} parts invalid, left out" if invalid else None)

    def _metadata(self, started: float, fallback: bool, error: str | None, charge_generation: bool):
        # lazy: optional (make agent)
        from sys_scan_agent.llm_provider import ProviderMetadata

        counted = self._generator if isinstance(self._generator, _Counting) and charge_generation else None
        seconds = (self._result[2] if counted and self._result else 0.0) + time.perf_counter() - started
        metadata = ProviderMetadata(
            model_name=self.model_name,
            provider_name=PROVIDER_NAME,
            latency_ms=int(seconds * 1000),
            tokens_prompt=counted.tokens_prompt if counted else 0,
            tokens_completion=counted.tokens_completion if counted else 0,
            cached=False,
            fallback=fallback,
            error_message=error,
            temperature=0.0,
            timestamp=datetime.now().isoformat(),
        )
        self.calls.append(metadata)
        return metadata

    def summarize(
        self, reductions, correlations, actions, *, skip=False, previous=None, skip_reason=None, baseline_context=None
    ):
        # lazy: optional (make agent)
        from sys_scan_agent.models import Summaries

        started = time.perf_counter()
        if skip and previous is not None:
            summaries, _ = self._heuristic.summarize(
                reductions,
                correlations,
                actions,
                skip=True,
                previous=previous,
                skip_reason=skip_reason,
                baseline_context=baseline_context,
            )
            return summaries, self._metadata(started, False, None, False)
        fresh = self._result is None
        enriched, problem = self.enrichment()
        if enriched is None:
            summaries, _ = self._heuristic.summarize(
                reductions, correlations, actions, baseline_context=baseline_context
            )
            return summaries, self._metadata(started, True, problem, fresh)
        ours = enriched.get("summaries") or {}
        fields = {k: ours[k] for k in Summaries.model_fields if k in ours}
        fields["triage_summary"] = self._top(enriched)
        fields["metrics"] = {
            **(ours.get("metrics") or {}),
            "secml_model": self.model_name,
            "secml_parts": [p.summary() for p in self._result[1]],
        }
        return Summaries(**fields), self._metadata(started, False, problem, fresh)

    @staticmethod
    def _top(enriched: dict) -> dict:
        findings = sorted(enriched.get("enriched_findings") or [], key=lambda f: -f.get("risk_score", 0))
        top = [{k: f.get(k) for k in ("id", "title", "severity", "risk_score")} for f in findings[:TOP_FINDINGS]]
        return {"top_findings": top, "correlation_count": len(enriched.get("correlations") or [])}

    def triage(self, reductions, correlations):
        started = time.perf_counter()
        fresh = self._result is None
        enriched, problem = self.enrichment()
        if enriched is None:
            result, _ = self._heuristic.triage(reductions, correlations)
            return result, self._metadata(started, True, problem, fresh)
        return self._top(enriched), self._metadata(started, False, problem, fresh)

    def refine_rules(self, suggestions, examples=None):
        started = time.perf_counter()
        refined, _ = self._heuristic.refine_rules(suggestions, examples)
        return refined, self._metadata(
            started,
            True,
            "rule refinement is sys-scan-agent's heuristic: no model of this repository is trained for it",
            False,
        )
