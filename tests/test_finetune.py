"""One-shot fine-tuning on a real photo: augmentation geometry, PSNR rises, the CLI writes
reloadable params."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from emotalk_jax import checkpoints
from emotalk_jax.generate import finetune
from emotalk_jax.media import landmarks as landmarks_lib
from emotalk_jax.models import texture_model
from emotalk_jax import stages
from emotalk_jax.train import texture as train_texture

SIZE = 64


def test_augmented_pairs_move_landmarks_with_the_image():
  """A bright dot at a landmark stays under that landmark after flip + affine (no colour /
  noise)."""
  photo = -jnp.ones((SIZE, SIZE, 3))
  points = jnp.zeros((68, 2)).at[:, 0].set(jnp.linspace(-0.5, 0.5,
                                                        68)).at[30].set(jnp.asarray([0.3, -0.2]))
  px = np.rint(((np.asarray(points[30]) + 1) * SIZE - 1) / 2).astype(int)
  photo = photo.at[px[1] - 1:px[1] + 2, px[0] - 1:px[0] + 2].set(1.0)
  pairs = finetune.augmented_pairs(np.random.default_rng(3), photo, points, 8, colour=0.0,
                                   landmark_noise=0.0, max_rotation=10.0, max_shift=0.1)
  for key, lm_key in (("neutral", "neutral_landmarks"), ("target", "target_landmarks")):
    for img, lm in zip(np.asarray(pairs[key]), np.asarray(pairs[lm_key])):
      # The flip may renumber points: find the moved dot's landmark among all 68.
      brightest = np.unravel_index(np.argmax(img.sum(-1)), img.shape[:2])
      pts = ((lm + 1) * SIZE - 1) / 2
      assert np.min(np.hypot(pts[:, 0] - brightest[1], pts[:, 1] - brightest[0])) < 1.5
  assert not np.allclose(pairs["neutral"], pairs["target"])  # Different affines per side.


def test_a_flip_folded_into_the_sampling_map_mirrors_the_photo():
  """With no motion or colour, a drawn flip returns the mirrored photo (pixel centres land on pixel
  centres, up to float rounding) and the mirrored landmarks; no flip returns the photo."""
  photo = jax.random.uniform(jax.random.PRNGKey(0), (SIZE, SIZE, 3), minval=-1.0, maxval=1.0)
  points = jax.random.uniform(jax.random.PRNGKey(1), (68, 2), minval=-0.5, maxval=0.5)
  still = dict(max_rotation=0.0, max_scale=0.0, max_shift=0.0, colour=0.0, landmark_noise=0.0)
  for flip_prob, image, lm in ((1.0, photo[:, ::-1], landmarks_lib.mirror(np.asarray(points))),
                               (0.0, photo, points)):
    pairs = finetune.augmented_pairs(np.random.default_rng(0), photo, points, 2,
                                     flip_prob=flip_prob, **still)
    for side in ("neutral", "target"):
      np.testing.assert_allclose(pairs[side], np.broadcast_to(image, (2, SIZE, SIZE, 3)),
                                 atol=1e-5)
      np.testing.assert_allclose(pairs[side + "_landmarks"], np.broadcast_to(lm, (2, 68, 2)),
                                 atol=1e-6)


@pytest.fixture(scope="module")
def photo(shared_data):
  return shared_data / "faces" / "makeittalk" / "audrey.jpg"


@pytest.mark.slow
def test_finetune_raises_psnr_on_a_real_photo_and_cli_saves_params(photo, tmp_path):
  from configs import texture_test  # pylint: disable=g-import-not-at-top
  config = texture_test.get_config()
  config.image_size = SIZE
  config.model.width = 8
  params = texture_model.init_params(texture_model.create_model(config), jax.random.PRNGKey(0),
                                     SIZE)
  # An untrained net copies its (warped) input; start from a decoder that adds a random correction,
  # shown
  # almost everywhere, so there is something to adapt: a random residual head and occlusion logit
  # bias -6 at
  # the finest scale (sigmoid(-3) ~ 0.05).
  head = params["decoder"]["to_residual"]["kernel"]
  params["decoder"]["to_residual"]["kernel"] = 0.3 * jax.random.normal(
      jax.random.PRNGKey(1), head.shape)
  params["motion"]["head2"]["bias"] = params["motion"]["head2"]["bias"].at[2].set(-6.0)
  run = tmp_path / "run"
  checkpoints.export(params, config, run / "texture.npz")
  from emotalk_jax.cli import main as cli  # pylint: disable=g-import-not-at-top
  out = tmp_path / "adapted"
  assert cli.main([
      "finetune", "--image",
      str(photo), "--checkpoint",
      str(run / "texture.npz"), "--out",
      str(out), "--steps", "60", "--learning-rate", "1e-3"
  ]) == 0
  report = json.loads((out / "report.json").read_text())
  assert report["psnr_after"] > report["psnr_before"] + 1.0, report
  assert report["ssim_after"] > report["ssim_before"], report
  assert report["steps"] == 60 and report["size"] == SIZE
  model, adapted, _ = stages.get("texture").load(out / finetune.PARAMS_FILE)
  assert model.width == 8
  assert not np.allclose(adapted["decoder"]["to_residual"]["kernel"],
                         params["decoder"]["to_residual"]["kernel"])
  assert (out / "reconstruction.png").stat().st_size > 0
