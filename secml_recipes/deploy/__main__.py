"""`python -m secml_recipes.deploy`: the deploy command: quantize and verify (secml quantize)."""

import sys

from secml_recipes.deploy.quantize import main

sys.exit(main())
