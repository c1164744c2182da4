"""Every speed feature leaves the loss and gradients of identical batches unchanged."""

import dataclasses

import pytest
import torch

from helpers import ROOT, XLA, make_trainer
from secml_recipes.scan.fixtures import real_reports
from secml_recipes.tasks.split import specialist_examples
from secml_recipes.train.plan.activations import decoder_layers
from secml_recipes.train.run_settings import Environment

SEQUENTIAL = (
    "--train_sampling_strategy",
    "sequential",
    "--shuffle_dataset",
    "false",
    "--per_device_train_batch_size",
    "4",
)


@pytest.fixture(scope="module")
def rows():
    return [
        {k: r[k] for k in ("prompt", "completion")} for r in specialist_examples(next(real_reports()), "fx", 2500)[:4]
    ]


def _loss_and_grads(trainer, model, batch):
    model.zero_grad()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop
    n = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=n)
    loss.backward()
    return float(loss.detach()), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


def _assert_same_step(padded, padded_batch, fast, fast_batch):
    """The fast trainer's batch gives the padded (sdpa) batch's loss and gradients, on the fast trainer's model."""
    model = fast.model.train()
    lf, gf = _loss_and_grads(fast, model, fast_batch)
    model.set_attn_implementation("sdpa")
    lp, gp = _loss_and_grads(padded, model, padded_batch)
    assert lf == pytest.approx(lp, rel=1e-5)
    for name in gp:
        torch.testing.assert_close(gf[name], gp[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_padding_free_gives_the_padded_loss_and_gradients(tiny_models, tmp_path, rows):
    padded = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "a",
        *SEQUENTIAL,
        "--padding_free",
        "false",
        "--max_length",
        "16384",
    )
    flat = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "b",
        *SEQUENTIAL,
        "--padding_free",
        "true",
        "--max_length",
        "16384",
    )
    model = padded.model.train()
    pb, fb = next(iter(padded.get_train_dataloader())), next(iter(flat.get_train_dataloader()))
    assert fb["input_ids"].numel() < pb["input_ids"].numel()  # the padding is gone
    la, ga = _loss_and_grads(padded, model, pb)
    lb, gb = _loss_and_grads(flat, model, fb)
    assert lb == pytest.approx(la, rel=1e-5)
    for name in ga:
        torch.testing.assert_close(gb[name], ga[name], rtol=1e-4, atol=1e-5, msg=name)


def test_padding_free_still_enforces_max_length(tiny_models, tmp_path, rows):
    full = make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "a", *SEQUENTIAL, "--max_length", "16384")
    longest = max(len(ids) for ids in full.train_dataset["input_ids"])
    cut = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "b",
        *SEQUENTIAL,
        "--padding_free",
        "true",
        "--max_length",
        str(longest - 10),
        "--keep_truncated_rows",
        "true",
    )
    assert cut.args.max_length == longest - 10 and len(cut.train_dataset) == len(rows)
    assert max(len(ids) for ids in cut.train_dataset["input_ids"]) == longest - 10
    # By default the row whose completion the limit cuts is dropped, and counted.
    dropped = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "d",
        *SEQUENTIAL,
        "--padding_free",
        "true",
        "--max_length",
        str(longest - 10),
    )
    assert len(dropped.train_dataset) == len(rows) - 1 and dropped.planned["truncation"]["train"]["dropped"] == 1
    # A limit inside every prompt leaves no trained token in any row: refused.
    with pytest.raises(ValueError, match="every one of the"):
        make_trainer(
            "specialist",
            tiny_models["llama"],
            rows,
            tmp_path / "c",
            *SEQUENTIAL,
            "--padding_free",
            "true",
            "--max_length",
            "64",
        )


def test_xla_turns_padding_free_off_and_pads_to_buckets(tiny_models, tmp_path, rows):
    import secml_recipes.train.trainers as trainers

    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path,
        *SEQUENTIAL,
        "--padding_free",
        "true",
        "--max_length",
        "4096",
        env=XLA,
    )
    assert not trainer.args.padding_free and "fused" not in str(trainer.args.optim.value)
    assert isinstance(trainer.data_collator, trainers.BucketCollator)
    # Buckets planned from the rows' token lengths: at most xla_bucket_count, multiples of 128, covering all rows.
    buckets = trainer.data_collator.bucket_lengths
    lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert 1 <= len(buckets) <= 4 and all(b % 128 == 0 for b in buckets) and buckets[-1] >= max(lengths)
    assert buckets[-1] < 4096  # not max_length: the data's longest row decides
    for row in trainer.train_dataset:
        assert trainer.data_collator([row])["input_ids"].shape[1] in buckets
    explicit = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "x",
        *SEQUENTIAL,
        "--max_length",
        "4096",
        "--xla_bucket_lengths",
        "[1024, 2048, 4096]",
        env=XLA,
    )
    assert explicit.data_collator.bucket_lengths == [1024, 2048, 4096]


def test_planned_buckets_are_optimal_and_beat_max_length_fractions():
    import bisect
    import itertools
    import random

    from secml_recipes.train.buckets import batch_maxima, default_buckets, padding_efficiency, plan_buckets, round_up

    rng = random.Random(1)
    for _ in range(100):  # against brute force over every choice of buckets
        lengths = [rng.randint(10, 900) for _ in range(rng.randint(3, 30))]
        batch, count = rng.randint(1, 4), rng.randint(1, 4)
        planned = plan_buckets(lengths, batch, count, multiple=64)
        need = [round_up(m, 64) for m in batch_maxima(lengths, batch)]
        options = sorted(set(need))

        def cost(buckets, need=need):
            return sum(buckets[bisect.bisect_left(buckets, n)] for n in need)

        best = min(
            cost(sorted(set(c) | {options[-1]})) for r in range(count) for c in itertools.combinations(options[:-1], r)
        )
        assert len(planned) <= count and cost(planned) == best
    # The scan length mix (prompts 256-1536 + completions 128-768 tokens), batch 2, max_length 8192.
    lengths = [rng.randint(256, 1536) + rng.randint(128, 768) for _ in range(2000)]
    planned = plan_buckets(lengths, 2, 4)
    # Measured: 76.5% of computed tokens are real with 4 planned buckets, 61.5% with max_length/4, /2, /1.
    assert padding_efficiency(lengths, 2, planned) > padding_efficiency(lengths, 2, default_buckets(8192)) + 0.1


# --- attention: `varlen` keeps the sequences of a padding-free row apart, exactly -----------------------------


@pytest.mark.parametrize("task", ["specialist", "generalist"])
def test_varlen_attention_gives_the_padded_loss_and_gradients(tiny_models, tmp_path, rows, episode_with_tools, task):
    data = rows if task == "specialist" else [episode_with_tools] * 3
    # LoRA dropout draws masks shaped like the batch, so padded and flat batches would draw different ones.
    nodrop = ("--lora_dropout", "0.0")
    model_path = tiny_models["llama" if task == "specialist" else "mixtral"]
    padded = make_trainer(
        task,
        model_path,
        data,
        tmp_path / "a",
        *SEQUENTIAL,
        "--padding_free",
        "false",
        "--attn_implementation",
        "sdpa",
        "--max_length",
        "16384",
        *nodrop,
    )
    flat = make_trainer(
        task,
        model_path,
        data,
        tmp_path / "b",
        *SEQUENTIAL,
        "--padding_free",
        "true",
        "--attn_implementation",
        "auto",
        "--max_length",
        "16384",
        *nodrop,
    )
    assert flat.model.config._attn_implementation == "varlen"
    pb, fb = next(iter(padded.get_train_dataloader())), next(iter(flat.get_train_dataloader()))
    assert "cu_seq_lens_q" in fb and fb["cu_seq_lens_q"].numel() == pb["input_ids"].shape[0] + 1
    _assert_same_step(padded, pb, flat, fb)


@pytest.mark.slow
def test_bfd_packing_with_varlen_gives_the_padded_loss_and_gradients_of_the_same_rows(tiny_models, tmp_path, rows):
    """`packing: true` (TRL's best-fit-decreasing bins, padding-free) puts all four rows into one bin here: its
    loss and gradients are those of the padded batch of the same four rows."""
    padded = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "a",
        *SEQUENTIAL,
        "--padding_free",
        "false",
        "--attn_implementation",
        "sdpa",
        "--max_length",
        "16384",
    )
    packed = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "b",
        *SEQUENTIAL,
        "--packing",
        "true",
        "--per_device_train_batch_size",
        "1",
        "--attn_implementation",
        "auto",
        "--max_length",
        "16384",
    )
    assert len(packed.train_dataset) == 1 and packed.model.config._attn_implementation == "varlen"
    pb, kb = next(iter(padded.get_train_dataloader())), next(iter(packed.get_train_dataloader()))
    assert kb["cu_seq_lens_q"].numel() == 5 and kb["input_ids"].shape[1] == int(pb["attention_mask"].sum())
    _assert_same_step(padded, pb, packed, kb)


def test_varlen_attention_separates_sequences_without_cu_seq_lens_and_leaves_generation_alone():
    from transformers import LlamaConfig, LlamaForCausalLM

    from secml_recipes.train.attention import register

    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=97,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    ).eval()
    model.set_attn_implementation(register())
    lengths = [5, 9, 3]
    ids = torch.randint(0, 97, (1, sum(lengths)))
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    packed = model(input_ids=ids, position_ids=positions, use_cache=False).logits
    starts = [0, 5, 14, 17]
    alone = torch.cat([model(input_ids=ids[:, a:b], use_cache=False).logits for a, b in zip(starts, starts[1:])], 1)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    # Padded batches and KV-cache generation go through transformers' sdpa: same tokens as sdpa itself.
    prompt = torch.randint(3, 97, (2, 6))
    mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]])
    varlen_out = model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=6, do_sample=False)
    model.set_attn_implementation("sdpa")
    sdpa_out = model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=6, do_sample=False)
    assert torch.equal(varlen_out, sdpa_out)


def _settings(env, *overrides):
    from secml_recipes.train.recipe import load_recipe
    from secml_recipes.train.run_settings import resolve_run_settings

    args = load_recipe(ROOT / "recipes/tiny/specialist.yaml", ["--use_cpu", "false", *overrides])
    return resolve_run_settings(*args, env)


CUDA = Environment("cuda", cuda_capability=(9, 0))


def test_auto_attention_per_backend():
    def attention(env, padding_free="true", requested="auto"):
        return _settings(env, "--padding_free", padding_free, "--attn_implementation", requested).attn_implementation

    assert attention(Environment("cpu"), requested="sdpa") == "sdpa"  # explicit values are kept
    assert attention(Environment("cpu")) == "varlen"
    assert attention(CUDA, padding_free="false") == "sdpa"
    assert attention(XLA) == "sdpa"  # XLA: padded buckets
    flash = frozenset({"flash_attn"})
    assert attention(dataclasses.replace(CUDA, packages=flash)) == "flash_attention_2"
    assert attention(Environment("cpu", packages=flash)) == "varlen"


# --- Liger ----------------------------------------------------------------------------------------------------


def test_liger_is_only_turned_on_where_it_runs():
    from secml_recipes.train.run_settings import RunSettingsError

    liger = frozenset({"liger_kernel"})

    def on(env, setting="auto"):
        return _settings(env, "--liger_kernels", setting).use_liger_kernel

    assert on(dataclasses.replace(CUDA, packages=liger))
    assert not on(Environment("cpu", packages=liger))
    assert not on(dataclasses.replace(XLA, packages=liger))
    assert not on(dataclasses.replace(CUDA, packages=liger), "false")
    assert not on(CUDA)
    with pytest.raises(RunSettingsError, match="liger-kernel"):
        on(CUDA, "true")


# --- activation checkpointing sized to memory ------------------------------------------------------------------


def _train_losses(trainer) -> list[float]:
    trainer.train()
    return [h["loss"] for h in trainer.state.log_history if "loss" in h]


@pytest.mark.slow
def test_checkpointing_some_layers_gives_the_same_losses(tiny_models, tmp_path, rows):
    common = (
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--max_steps",
        "3",
        "--num_train_epochs",
        "1",
        "--lr_scheduler_type",
        "constant",
    )
    plain = _train_losses(
        make_trainer(
            "specialist", tiny_models["llama"], rows, tmp_path / "a", *common, "--activation_checkpointing", "false"
        )
    )
    for layers in ("all", "1", "0"):
        trainer = make_trainer(
            "specialist",
            tiny_models["llama"],
            rows,
            tmp_path / f"b{layers}",
            *common,
            "--activation_checkpointing",
            "true",
            "--checkpointed_layers",
            layers,
        )
        losses = _train_losses(trainer)
        flags = [layer.gradient_checkpointing for layer in decoder_layers(trainer.model)]
        assert flags == {"all": [True, True], "1": [True, False], "0": [False, False]}[layers]
        assert losses == pytest.approx(plain, rel=1e-5), layers


@pytest.mark.slow
def test_auto_checkpointing_plans_from_measured_activation_bytes(tiny_models, tmp_path, rows):
    from transformers import AutoModelForCausalLM

    from secml_recipes.train.plan.activations import measure_saved_bytes_per_token, plan_checkpointed_layers

    model = AutoModelForCausalLM.from_pretrained(tiny_models["llama"], attn_implementation="sdpa")
    state = torch.get_rng_state()
    per_layer = measure_saved_bytes_per_token(model, tokens=128, vocab_size=model.config.vocab_size)
    assert torch.equal(state, torch.get_rng_state())  # the probe leaves training's random stream alone
    hidden, inter = model.config.hidden_size, model.config.intermediate_size
    # fp32 Llama layer: at least the inputs of q/k/v/o and of the three MLP projections, the norms' inputs and
    # the gate/up outputs are kept, i.e. >= (6 * hidden + 3 * intermediate) floats per token; and far less than
    # a dense 128 x 128 attention matrix per head would add (sdpa keeps no attention probabilities).
    assert all(b >= 4 * (6 * hidden + 3 * inter) for b in per_layer), per_layer
    assert all(b < 4 * (30 * hidden + 10 * inter) for b in per_layer), per_layer
    full, ckpt, tokens = max(per_layer), hidden * 4, 1000
    assert plan_checkpointed_layers(2, full, ckpt, tokens, budget_bytes=10 * full * tokens) == 0
    assert plan_checkpointed_layers(2, full, ckpt, tokens, budget_bytes=1.5 * full * tokens) == 1
    assert plan_checkpointed_layers(2, full, ckpt, tokens, budget_bytes=1) == 2
    # Through the trainer: a budget for about one layer's activations of the longest micro-batch.
    probe = make_trainer(
        "specialist", tiny_models["llama"], rows, tmp_path / "p", *SEQUENTIAL, "--per_device_train_batch_size", "2"
    )
    lengths = sorted((len(ids) for ids in probe.train_dataset["input_ids"]), reverse=True)
    budget_gib = 1.5 * full * sum(lengths[:2]) / 2**30
    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "t",
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--max_steps",
        "1",
        "--activation_checkpointing",
        "true",
        "--checkpointed_layers",
        "auto",
        "--activation_memory_gib",
        str(budget_gib),
    )
    trainer.train()
    assert [layer.gradient_checkpointing for layer in decoder_layers(trainer.model)] == [True, False]


def test_checkpointed_layers_key_is_checked(tmp_path):
    from secml_recipes.train.recipe import RecipeError, load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text("output_dir: out\nuse_cpu: true\nbf16: false\ncheckpointed_layers: some\n")
    with pytest.raises(RecipeError, match="checkpointed_layers must be 'all', 'auto' or a number"):
        load_recipe(recipe)


# --- full fine-tuning optimizer: 8-bit AdamW states, bf16 weights with stochastic rounding ---------------------


@pytest.mark.slow
def test_eight_bit_adamw_with_stochastic_rounding_tracks_fp32_adamw(tiny_models, tmp_path, rows):
    pytest.importorskip("torchao")
    common = (
        *SEQUENTIAL,
        "--per_device_train_batch_size",
        "2",
        "--max_steps",
        "8",
        "--num_train_epochs",
        "2",
        "--lr_scheduler_type",
        "constant",
        "--learning_rate",
        "1e-3",
    )
    fp32 = _train_losses(
        make_trainer("specialist", tiny_models["llama"], rows, tmp_path / "a", *common, "--optim", "adamw_torch")
    )
    low = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path / "b",
        *common,
        "--dtype",
        "bfloat16",
        "--optim",
        "adamw_torch_8bit",
        "--optim_args",
        "bf16_stochastic_round=True",
    )
    losses = _train_losses(low)
    assert type(low.optimizer.optimizer).__name__ == "AdamW8bit" and low.optimizer.optimizer.bf16_stochastic_round
    assert next(low.model.parameters()).dtype == torch.bfloat16
    assert losses[-1] < 0.95 * losses[0]  # it learns
    # Measured: within 2e-5 of fp32 weights + fp32 AdamW over 8 steps (tolerance 1e-3).
    for a, b in zip(fp32, losses):
        assert b == pytest.approx(a, rel=1e-3)


def test_xla_swaps_torchao_optimizers_and_liger_for_plain_ones(tiny_models, tmp_path, rows):
    trainer = make_trainer(
        "specialist",
        tiny_models["llama"],
        rows,
        tmp_path,
        *SEQUENTIAL,
        "--optim",
        "adamw_torch_8bit",
        "--use_liger_kernel",
        "true",
        "--max_length",
        "4096",
        env=XLA,
    )
    assert trainer.args.optim.value == "adamw_torch" and not trainer.args.use_liger_kernel


def test_varlen_kernel_call_follows_torchs_contract(monkeypatch):
    """The CUDA branch, run on CPU against a stand-in that checks torch's documented varlen_attn contract
    ((T, H, D) tensors, int32 cu_seqlens, window (-1, 0) for causal, enable_gqa) and computes it exactly."""
    from transformers import LlamaConfig, LlamaForCausalLM

    import secml_recipes.train.attention as attention

    calls = []

    def fake_varlen_attn(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, window_size=(-1, -1), enable_gqa=False):
        assert q.dim() == 3 and q.shape[1] == 4 and k.shape[1] == 2 and q.is_contiguous() and k.is_contiguous()
        assert cu_q.dtype == torch.int32 and torch.equal(cu_q, cu_k) and max_q == max_k == int(cu_q.diff().max())
        assert tuple(window_size) == (-1, 0) and enable_gqa
        calls.append(cu_q.tolist())
        out = []
        for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist()):
            out.append(
                torch.nn.functional.scaled_dot_product_attention(
                    q[a:b].transpose(0, 1),
                    k[a:b].transpose(0, 1),
                    v[a:b].transpose(0, 1),
                    is_causal=True,
                    scale=scale,
                    enable_gqa=True,
                ).transpose(0, 1)
            )
        return torch.cat(out)

    monkeypatch.setattr(attention, "_torch_varlen", lambda: fake_varlen_attn)
    monkeypatch.setattr(attention, "kernel_available", lambda device, dtype: True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=97,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
        )
    )
    lengths = [7, 4, 11]
    ids = torch.randint(0, 97, (1, sum(lengths)))
    positions = torch.cat([torch.arange(n) for n in lengths])[None]
    cu = torch.tensor([0, 7, 11, 22], dtype=torch.int32)
    model.set_attn_implementation(attention.register())
    packed = model(
        input_ids=ids,
        position_ids=positions,
        cu_seq_lens_q=cu,
        cu_seq_lens_k=cu,
        max_length_q=11,
        max_length_k=11,
        use_cache=False,
    ).logits
    packed.sum().backward()
    assert calls == [[0, 7, 11, 22]] * 2  # once per layer, with the collator's boundaries
    model.set_attn_implementation("sdpa")
    alone = torch.cat([model(input_ids=ids[:, a:b], use_cache=False).logits for a, b in [(0, 7), (7, 11), (11, 22)]], 1)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
