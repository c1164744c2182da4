"""`python -m secml_recipes COMMAND ...`: the `secml` command where the console script is not installed."""

import sys

from secml_recipes.cli import main

if __name__ == "__main__":
    sys.exit(main())
