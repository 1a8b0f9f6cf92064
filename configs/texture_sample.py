"""Stage 2 on the sample dataset (the clips in ../shared/data) at 128x128: a real run on this CPU.

  python -m data_pipelines.build talking_face_folder --config sample
  emotalk train texture --config configs/texture_sample.py --workdir ~/runs/texture_sample
  emotalk evaluate texture --config configs/texture_sample.py --workdir ~/runs/texture_sample

Short CPU runs favour reconstruction: the adversarial terms are off (they sharpen textures over long
  GPU
runs but cost PSNR early), and the flow is held near the landmarks' thin-plate spline
(`flow_residual_weight`): a free residual flow moves the features off their landmarks. L1 is counted
again, at twice the weight, near the target landmarks (`landmark_l1_weight`), where dlib reads.
Measured effects of both: docs/results.md.
"""

from configs import texture_128


def get_config():
  config = texture_128.get_config()
  config.dataset = "talking_face_folder"
  config.dataset_config = "sample"
  config.window = 4
  config.batch_size = 2          # 8 pairs per step.
  config.eval_batch_size = 8
  config.num_eval_batches = 2
  config.shuffle_buffer = 64
  config.adversarial_weight = 0.0
  config.feature_matching_weight = 0.0
  config.flow_residual_weight = 2.0
  config.landmark_l1_weight = 20.0
  config.learning_rate = 5e-4
  config.disc_learning_rate = 2e-4
  config.warmup_steps = 100
  config.num_train_steps = 2000
  config.log_every_steps = 25
  config.eval_every_steps = 250
  config.checkpoint_every_steps = 250
  return config
