"""Stage 2 (flow-guided texture GAN) on MEAD at 256x256, the paper's setting.

Build the dataset first (see data_pipelines/mead/README.md), make the VGG19 weights file for the
perceptual loss (`python tools/convert_vgg19.py vgg19-dcb9e9de.pth vgg19.npz`), then:

  emotalk train texture --config configs/texture.py --workdir ~/runs/texture_mead \
      --config.vgg_weights=vgg19.npz

Without `--config.vgg_weights` the perceptual term is off and the other terms train as usual.
Mixed precision (bf16 compute, float32 params): `--config.model.dtype=bfloat16` (GPUs and TPUs).
Multi-host (TPU pod, SLURM): the same command on every host with `--config.distributed=True`.
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
  config.window = 2             # Frames per clip window; each is one (neutral, target) pair.
  # Windows per global batch (pairs = batch_size * window); divisible by the devices.
  config.batch_size = 16
  config.eval_batch_size = 16
  config.num_eval_batches = 10
  config.shuffle_buffer = 1024
  config.seed = 0
  config.image_size = 256       # 128 or 256 (frames are resized in the step).
  config.source_frame_prob = 0.5  # Source = the window's first frame (else the identity reference).
  # A run directory to take the initial params from (fresh optimizer, step 0).
  config.init_from = ""
  # Take only the params whose path and shape fit; the rest start fresh.
  config.init_from_partial = False

  config.model = ml_collections.ConfigDict(
      dict(width=32, emotion_dim=64, max_flow=0.5, dtype="float32"))
  config.discriminator = ml_collections.ConfigDict(dict(width=64, num_scales=2, num_layers=3))

  # Loss weights (0 turns a term off).
  config.l1_weight = 10.0
  # L1 again, weighted towards the target landmarks (where dlib looks).
  config.landmark_l1_weight = 0.0
  # Std of that weight around each landmark, pixels of the image.
  config.landmark_l1_sigma_px = 3.0
  # L1 again, over a box around the target's mouth (texture_losses.mouth_box): teeth and cavity.
  config.mouth_l1_weight = 0.0
  # L1 of the decoder's own frame, before the occlusion blend.
  config.rgb_l1_weight = 0.0
  # L1 of output - warped neutral image: paint only where it pays.
  config.correction_weight = 0.0
  config.perceptual_weight = 10.0        # Only on with vgg_weights.
  # .npz, see emotalk_jax/models/vgg.py and tools/convert_vgg19.py.
  config.vgg_weights = ""
  config.vgg_layers = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
  config.vgg_layer_weights = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)
  config.adversarial_weight = 1.0
  config.gan_loss = "hinge"              # hinge | lsgan
  config.feature_matching_weight = 10.0
  config.flow_smoothness_weight = 0.01   # Per pixel of flow gradient.
  # Per pixel the flow departs from the landmarks' spline (tps_prior).
  config.flow_residual_weight = 0.0
  # Mean 1 - occlusion: paint with the decoder only where warping fails.
  config.occlusion_weight = 0.0

  # Optimizers (Adam with the GAN betas; the discriminator has its own learning rate).
  config.optimizer = "adam"
  config.learning_rate = 2e-4
  config.disc_learning_rate = 2e-4
  config.b1 = 0.5
  config.b2 = 0.999
  config.lr_schedule = "cosine"
  config.warmup_steps = 1000
  config.end_lr_factor = 0.1
  config.grad_clip_norm = 0.0
  config.num_train_steps = 200_000

  # Bookkeeping.
  config.log_every_steps = 100
  config.eval_every_steps = 2000
  config.checkpoint_every_steps = 2000
  config.max_checkpoints_to_keep = 3    # Plus the best by eval PSNR.
  config.num_grid_rows = 4              # Sample-grid rows per eval (0: none).
  config.distributed = False
  return config
