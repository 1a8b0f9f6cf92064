"""Stage 2 on the audio-visual sample dataset at 128x128, warm-started from the shipped checkpoint:
mouths that open from a closed-lipped source, with L1 weighted on the mouth.

  # ../shared/data; see docs/data.md#the-audio-visual-dataset-av
  python -m data_pipelines.build talking_face_folder --config av
  emotalk train texture --config configs/texture_av.py --workdir ~/runs/texture_av
  emotalk evaluate texture --config configs/texture_av.py --workdir ~/runs/texture_av

The `av` clips open their mouths thousands of times (GRID, CREMA-D, LRS) where the sample's open
them a few hundred; `mouth_l1` (L1 over a box around the target's mouth) makes the cavity and teeth
that a warp of closed lips cannot show worth painting. Measured effect: docs/results.md.
"""

from configs import texture_sample


def get_config():
  config = texture_sample.get_config()
  config.dataset_config = "av"
  config.init_from = "emotalk_jax/assets/checkpoints/texture.npz"
  config.mouth_l1_weight = 20.0
  config.learning_rate = 2e-4
  config.warmup_steps = 50
  config.num_train_steps = 4000
  config.eval_every_steps = 500
  config.checkpoint_every_steps = 500
  return config
