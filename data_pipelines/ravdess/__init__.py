"""RAVDESS (Livingstone & Russo, 2018) audio-visual speech clips from `manual_dir`."""

from data_pipelines.ravdess.ravdess_dataset_builder import Builder, RavdessConfig
