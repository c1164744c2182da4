"""BucketCollator: TRL's padded collator plus fixed XLA bucket lengths; padding never trained."""

import pytest
import torch

from secml_recipes.train.buckets import default_buckets
from secml_recipes.train.run_settings import detect_environment
from secml_recipes.train.trainers import BucketCollator


def test_labels_and_padding():
    # Labels arrive built by TRL's preparation (-100 on untrained positions); padding is never trained.
    c = BucketCollator(pad_token_id=0)
    batch = c([{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}, {"input_ids": [9, 10], "labels": [-100, 10]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8], [9, 10, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 7, 8], [-100, 10, -100, -100]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_prebuilt_labels_are_kept():
    c = BucketCollator(pad_token_id=0)
    batch = c([{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}])
    assert batch["labels"].tolist() == [[-100, 2, 3]]


def test_bucket_padding_uses_the_smallest_bucket_that_fits():
    c = BucketCollator(pad_token_id=0, bucket_lengths=[8, 16, 32])
    assert c([{"input_ids": [1] * 5, "labels": [1] * 5}])["input_ids"].shape == (1, 8)
    assert c([{"input_ids": [1] * 9, "labels": [1] * 9}])["input_ids"].shape == (1, 16)
    b = c([{"input_ids": [1] * 17, "labels": [1] * 17}])
    assert b["input_ids"].shape == (1, 32) and torch.all(b["labels"][0, 17:] == -100)
    assert b["attention_mask"].shape == (1, 32) and int(b["attention_mask"].sum()) == 17
    with pytest.raises(ValueError, match="longer than the largest XLA bucket 32"):
        c([{"input_ids": [1] * 33, "labels": [1] * 33}])


def test_pad_to_multiple_of():
    c = BucketCollator(pad_token_id=0, pad_to_multiple_of=8)
    assert c([{"input_ids": [1] * 9, "labels": [1] * 9}])["input_ids"].shape == (1, 16)


def test_default_buckets_and_device_detection():
    assert default_buckets(8192) == [2048, 4096, 8192]
    assert detect_environment().accelerator == "cpu"  # this machine (CI: no GPU, no torch_xla)
