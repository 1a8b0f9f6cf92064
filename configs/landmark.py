"""Stage 1 (landmark graph network) on MEAD, at the paper's scale.

Build the dataset first (see data_pipelines/mead/README.md), then:

  emotalk train landmark --config configs/landmark.py --workdir ~/runs/landmark_mead

Override any field on the command line, e.g. `--config.learning_rate=3e-4 --config.batch_size=64`.
Multi-host (TPU pod, SLURM): run the same command on every host with `--config.distributed=True`.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  # Data: a TFDS name (+ builder config), or the directory of a prepared dataset version.
  config.dataset = "mead"
  config.dataset_config = ""
  config.data_dir = ""          # TFDS data_dir; "" = the TFDS default (~/tensorflow_datasets).
  config.train_split = "train"
  config.test_split = "test"
  config.window = 8             # K consecutive frames per example.
  config.batch_size = 32        # Global; must be divisible by the number of devices.
  config.eval_batch_size = 32
  config.num_eval_batches = 20
  config.shuffle_buffer = 1024
  config.seed = 0

  config.model = ml_collections.ConfigDict(
      dict(audio_dim=128,
           emotion_dim=64,
           graph_features=(32, 64, 64),
           graph_dim=128,
           decoder_features=(64, 64),
           temporal_kernel=5,
           temporal_layers=2,
           emotion_head=True,
           displacement_scale=0.1,
           dropout_rate=0.1,
           motion_readout=True,
           zero_init_decoder=True,
           shape_only=True,
           emotion_basis=False,
           speech_input="mel",
           dtype="float32"))

  # Loss.
  config.mouth_weight = 3.0
  config.velocity_weight = 1.0
  config.emotion_weight = 0.1
  # Clips without audio: emotion geometry (see models.landmark_losses.landmark_loss).
  config.silent_weight = 1.0
  # Per-node error: squared | euclidean (as M-LMD / F-LMD measure).
  config.landmark_distance = "squared"
  # Within-window motion of the nodes speech does not move (head motion).
  config.head_motion_weight = 0.1
  config.flip_prob = 0.5        # Left-right mirroring of the landmarks.
  # Mouth opening (inner-lip gap) of clips with audio: L1 per frame, of its velocity, of its std
  # over the
  # window (see models.landmark_losses.opening_loss). A landmark distance alone favours a still
  # mouth.
  config.opening_weight = 0.0
  config.opening_velocity_weight = 0.0
  config.opening_std_weight = 0.0
  # Draw training windows evenly over speakers (one can be most of the data).
  config.balance_speakers = False
  # Start from the training set's mean displacement (the mean-motion baseline) and keep it fixed:
  # the network learns what audio and emotion add to it.
  config.init_mean_displacement = True

  # Optimizer.
  config.optimizer = "adam"     # adam | adamw | sgd
  config.learning_rate = 1e-3
  config.lr_schedule = "cosine"  # cosine | constant
  config.warmup_steps = 1000
  config.end_lr_factor = 0.01
  config.weight_decay = 1e-4    # adamw only.
  config.grad_clip_norm = 1.0   # 0: no clipping.
  # Top-level param names never updated (the emotion basis is measured, like the prior).
  config.frozen_params = ("mean_displacement", "emotion_basis")
  config.num_train_steps = 100_000

  # Bookkeeping.
  config.log_every_steps = 100
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  # Plus the best by eval M-LMD (ranked where eval and checkpoint steps meet).
  config.max_checkpoints_to_keep = 3
  config.num_plots = 1                # 0: no landmark plots.
  # Whole test clips with audio scored for lip motion at each eval (lip_r...).
  config.lip_eval_clips = 0
  config.distributed = False          # True: jax.distributed.initialize() (multi-host).
  return config
