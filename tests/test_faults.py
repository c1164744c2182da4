"""The end-to-end faults of `make chaos`, as tests: a SIGKILL or a full disk while a checkpoint is written (the real
sft in a child process) resumes from the newest complete checkpoint with its token totals; a NaN step stops the
run; two runs never share an output folder."""

import json

import pytest
from harness.chaos import Chaos


@pytest.fixture
def chaos(tiny_models, small_corpus, tmp_path):
    harness = Chaos(tmp_path)
    harness.model, harness.corpus, harness.inputs = tiny_models["llama"], small_corpus, {}
    return harness


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["kill-in-checkpoint", "enospc-in-checkpoint"])
def test_a_crash_while_checkpointing_resumes_with_its_token_totals(chaos, tmp_path, fault):
    chaos.crash_in_checkpoint(fault)
    result = chaos.results[-1]
    assert result.holds, result.observed
    state = json.loads((tmp_path / fault / "trainer_state.json").read_text())
    logged = [h for h in state["log_history"] if "loss" in h]
    assert [h["step"] for h in logged] == [1, 2, 3, 4, 5, 6]
    totals = [h["total_trained_tokens"] for h in logged]
    # Step 3 ran after the resume from checkpoint-2: its total continues the saved one instead of restarting.
    assert totals[2] == totals[1] + logged[2]["trained_tokens"]
    assert all(b > a for a, b in zip(totals, totals[1:]))
    assert state["stateful_callbacks"]["TokenCounter"]["attributes"]["trained_tokens"] == totals[-1]


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_saves_nothing_non_finite(chaos):
    chaos.nan_loss()
    assert chaos.results[-1].holds, chaos.results[-1].observed


@pytest.mark.slow
def test_two_runs_into_one_output_dir(chaos):
    chaos.concurrent_runs()
    assert chaos.results[-1].holds, chaos.results[-1].observed
