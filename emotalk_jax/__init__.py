"""emotalk-jax: a research reimplementation of emotion-controllable one-shot talking-face
generation in JAX."""

__version__ = "0.1.0"
