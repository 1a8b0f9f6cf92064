"""Stage 2 at 128x128: the fast setting (a CPU or one small GPU), same losses as configs/texture.py.

  emotalk train texture --config configs/texture_128.py --workdir ~/runs/texture_mead_128
"""

from configs import texture


def get_config():
  config = texture.get_config()
  config.image_size = 128
  config.model.width = 16
  config.discriminator.update(width=32)
  config.batch_size = 8
  config.eval_batch_size = 8
  config.vgg_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # relu5_1 is 8x8 at 128.
  config.vgg_layer_weights = (1 / 16, 1 / 8, 1 / 4, 1.0)
  return config
