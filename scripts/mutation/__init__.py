"""Mutation testing: does the suite fail when the code is wrong?

`scripts/mutate` applies each mutation of `mutations.toml` (one plausible bug:
an off-by-one, a flipped comparison, a dropped check) to a private copy of
the tree, runs only the tests mapped to the mutated file, and counts the
mutation killed when they fail. The logic lives in `runner.py`.
"""
