"""A tiny stage 1 run for tests and CI: a few steps of a very small model on CPU.

  emotalk train landmark --config configs/landmark_test.py --workdir /tmp/landmark_test \
      --config.dataset=PATH_TO_A_PREPARED_DATASET_DIR

(the default dataset is the sample dataset, `python -m data_pipelines.build talking_face_folder
--config sample`).
"""

from configs import landmark


def get_config():
  config = landmark.get_config()
  config.dataset = "talking_face_folder"
  config.dataset_config = "sample"
  config.window = 4
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_eval_batches = 1
  config.shuffle_buffer = 16
  config.model.update(audio_dim=8,
                      emotion_dim=8,
                      graph_features=(8, 8),
                      graph_dim=8,
                      decoder_features=(8,),
                      temporal_kernel=3,
                      temporal_layers=1)
  config.lr_schedule = "constant"  # The step's program then does not depend on num_train_steps.
  config.warmup_steps = 1
  config.num_train_steps = 4
  config.log_every_steps = 1
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.max_checkpoints_to_keep = 1
  return config
