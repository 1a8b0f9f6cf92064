"""The `emotalk` command line (`main`); the harness forms of `emotalk evaluate` (`evaluate`)."""
