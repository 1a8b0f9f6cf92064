"""`python -m emotalk_jax.cli ...` is `emotalk ...`."""
import sys

from emotalk_jax.cli import main

sys.exit(main.main())
