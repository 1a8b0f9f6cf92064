"""Stage 2 at 256x256 on the audio-visual sample dataset, warm-started from the shipped 128
checkpoint (the network is convolutional and its flow is in crop-relative units, so the same params
run at any size): does rendering at 256 paint the mouth and the lids better than at 128 upsampled?

  # ../shared/data; see docs/data.md#the-audio-visual-dataset-av
  python -m data_pipelines.build talking_face_folder --config av
  emotalk train texture --config configs/texture_av256.py --workdir ~/runs/texture_av256
  python tools/eval_texture_resolution.py --workdir ~/runs/texture_av256

The dataset's crops are 256 px; at 128 they are resized in the step. Measured: docs/results.md.
"""

from configs import texture_av


def get_config():
  config = texture_av.get_config()
  config.image_size = 256
  config.mouth_l1_weight = 40.0  # As in the shipped checkpoint's last run.
  config.num_train_steps = 1000
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  return config
