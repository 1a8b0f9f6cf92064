"""Any folder of talking-face clips (users' own data, the project's sample dataset)."""

from data_pipelines.talking_face_folder.talking_face_folder_dataset_builder import (
    AV_GRID_S1_STRIDE, AV_TEST_SPEAKERS, Builder, FolderConfig, Source, SAMPLE_TEST_SPEAKERS,
    SHARED_DATA, av_config, sample_config, shared_data_root)
