"""Shared fixtures: tiny models and a small corpus, built offline once per test session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """{'llama': path, 'mixtral': path}: random tiny models with locally trained tokenizers."""
    from harness.tiny import build_tiny_models

    return build_tiny_models(tmp_path_factory.mktemp("tiny"), vocab_size=1024, seed=0, pretrain_steps=0)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory):
    """A small massive_datasets.tar.gz (path) built by the real builder."""
    from secml_recipes.corpus.tarball import build_corpus

    out = tmp_path_factory.mktemp("corpus") / "massive_datasets.tar.gz"
    build_corpus(out, n_specialist=24, n_generalist=24, seed=3, max_prompt_chars=4000)
    return out


@pytest.fixture(scope="session")
def episode_with_tools():
    """A multi-turn episode with several sequential calls, found in generated data."""
    import random

    from secml_recipes.corpus.episodes import build_episode
    from secml_recipes.scan.generate import generate_report, plan_hosts

    for plan in plan_hosts(200, 11):
        if plan.profile != "compromised_host":
            continue
        report = generate_report(plan)
        ep = build_episode(report, "ioc_investigation", random.Random(0))
        if ep is not None:
            return ep
    raise RuntimeError("no compromised host with an IOC in 200 planned hosts")


@pytest.fixture(scope="session")
def parallel_episode():
    import random

    from secml_recipes.corpus.episodes import build_episode
    from secml_recipes.scan.generate import generate_report, plan_hosts

    for plan in plan_hosts(50, 5):
        report = generate_report(plan)
        ep = build_episode(report, "parallel_check", random.Random(0))
        if ep is not None:
            return ep
    raise RuntimeError("no host with two SUID findings")


@pytest.fixture(scope="session")
def llama_cpp_source():
    """llama.cpp's converter from the llama-cpp-python source distribution (registry), as `make llama-cpp` gets it."""
    from secml_recipes import layout, versions

    version, cache, src = versions.LLAMA_CPP_PYTHON, layout.llama_cpp_source().parent, layout.llama_cpp_converter_dir()
    if not (src / "convert_hf_to_gguf.py").exists():
        cache.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-binary",
                ":all:",
                "--no-deps",
                "--quiet",
                "-d",
                str(cache),
                f"llama-cpp-python=={version}",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot fetch the llama-cpp-python source from the package registry: {proc.stderr[-300:]}")
        subprocess.run(["tar", "-xzf", str(cache / f"llama_cpp_python-{version}.tar.gz"), "-C", str(cache)], check=True)
    return src


@pytest.fixture(scope="session")
def tiny_architectures(tmp_path_factory):
    """{name: path} for tiny random Qwen3, Qwen3-MoE, Qwen2.5, Gemma 3 and ChatML-Llama models (no chat template)."""
    from harness.tiny import TINY_ARCHITECTURES, build_tiny_architecture

    root = tmp_path_factory.mktemp("tiny-arch")
    return {name: build_tiny_architecture(root / name, name) for name in TINY_ARCHITECTURES}
