"""MEAD (Wang et al., ECCV 2020) from its published per-speaker layout."""

from data_pipelines.mead.mead_dataset_builder import Builder, MeadConfig, MEAD_TEST_SPEAKERS
