"""A tiny stage 2 run for tests and CI: a few steps of a very small model at 32x32 on CPU.

  emotalk train texture --config configs/texture_test.py --workdir /tmp/texture_test \
      --config.dataset=PATH_TO_A_PREPARED_DATASET_DIR
"""

from configs import texture


def get_config():
  config = texture.get_config()
  config.dataset = "talking_face_folder"
  config.dataset_config = "sample"
  config.image_size = 32
  config.window = 1
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_eval_batches = 1
  config.shuffle_buffer = 16
  config.model.update(width=4, emotion_dim=8)
  config.discriminator.update(width=4, num_scales=2, num_layers=2)
  config.lr_schedule = "constant"  # The step's program then does not depend on num_train_steps.
  config.warmup_steps = 1
  config.num_train_steps = 4
  config.log_every_steps = 1
  config.eval_every_steps = 2
  config.checkpoint_every_steps = 2
  config.max_checkpoints_to_keep = 1
  config.num_grid_rows = 2
  return config
