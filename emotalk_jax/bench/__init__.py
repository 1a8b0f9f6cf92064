"""Benchmarks that print JSON (`emotalk bench ...`). Timings are wall-clock on the machine that runs
them; tests
never assert them."""
