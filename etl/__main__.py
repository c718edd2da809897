"""`python -m etl` is the `etl` command."""

from etl.cli.main import main

main()
