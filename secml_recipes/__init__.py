"""secml-recipes: train security-analysis language models on sys-scan output with Accelerate + TRL."""

__version__ = "0.1.0"
