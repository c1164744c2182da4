"""`python -m secml_recipes.evaluation`: the evaluation command (secml eval)."""

import sys

from secml_recipes.evaluation.evaluate import main

sys.exit(main())
