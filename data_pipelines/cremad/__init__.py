"""CREMA-D (Cao et al., 2014) audio-visual clips from `manual_dir`."""

from data_pipelines.cremad.cremad_dataset_builder import Builder, CremadConfig
