"""Stage 1 on the sample dataset (the clips in ../shared/data): a quick real run on one GPU or a
CPU.

  python -m data_pipelines.build talking_face_folder --config sample
  emotalk train landmark --config configs/landmark_sample.py --workdir ~/runs/landmark_sample
"""

from configs import landmark


def get_config():
  config = landmark.get_config()
  config.dataset = "talking_face_folder"
  config.dataset_config = "sample"
  config.batch_size = 8
  config.eval_batch_size = 8
  config.num_eval_batches = 20  # 160 test windows: 2 batches were too few to rank checkpoints.
  config.shuffle_buffer = 64
  config.warmup_steps = 50
  config.num_train_steps = 300  # Held-out F-LMD gets worse after 200-300 steps on 71 clips.
  config.log_every_steps = 20
  config.eval_every_steps = 50
  config.checkpoint_every_steps = 50
  return config
