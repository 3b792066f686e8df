"""`python -m spinekv` runs the command line."""

from .cli import main

main()
