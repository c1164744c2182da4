"""`python -m secml_recipes.train`: the training command (secml train)."""

import sys

from secml_recipes.train.sft import main

sys.exit(main())
