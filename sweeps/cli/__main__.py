"""`python -m sweeps.cli`: the same as `dqn-sweep`."""

from sweeps.cli import main

main()
