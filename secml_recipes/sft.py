"""`accelerate launch -m secml_recipes.sft RECIPE.yaml`: the training command's stable path (the code is
`train/sft.py`; `secml train` and `python -m secml_recipes.train` run the same)."""

import sys

from secml_recipes.train.sft import main

if __name__ == "__main__":
    sys.exit(main())
