"""Stage 1's lip sync on held-out clips where a long speech puts them: later in Whisper's window.

Usage (from the repository root; ../shared/data beside it, the `av` dataset built):

  nice python tools/eval_stage1_in_long_speech.py [--checkpoint landmark.npz] \
      [--data-dir /tmp/tfds_data] [--json OUT.json]

Whisper's features depend on where in its 30 s window a sound falls, and `emotalk generate` reads
the frames of a long speech from anywhere in the first 27.5 s of a window, while a short clip on its
own sits at the start. For each held-out clip with speech of the `av` dataset (GRID s26, s31 and
the in-the-wild FeiFeiLi and KristiNoem clips), its audio is encoded (`whisper.speech_features`):

* `alone`: on its own (the clip at the window's start);
* `silence_5s`, `silence_10s`, `silence_20s`: after that much silence;
* `long_speech`: in one long speech of all the clips' audio in a row (three seeded orders; each
  clip's frames of it).

Stage 1 (neutral emotion, the dataset's neutral landmarks) predicts each clip's landmarks from
its frames of those features alone, and the predicted mouth opening is compared with the clip's
true one (`evaluate.lipsync.lip_motion`: per-clip Pearson r and std ratio, averaged over clips).
Prints JSON.
"""

import argparse
import json
import pathlib
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# pylint: disable=g-import-not-at-top,wrong-import-position
import jax

from configs import landmark_av
from data_pipelines import input_pipeline
from emotalk_jax import emotions
from emotalk_jax import stages
from emotalk_jax.evaluate import lipsync
from emotalk_jax.media import audio
from emotalk_jax.models import face_graph
from emotalk_jax.models import landmark_model
from emotalk_jax.models import whisper
from emotalk_jax.models import whisper_weights
from emotalk_jax.train import landmark as train_landmark
# pylint: enable=g-import-not-at-top,wrong-import-position

SHARED = ROOT.parent / "shared" / "data"
SAMPLES_PER_FRAME = whisper.SAMPLE_RATE // whisper.FPS
SILENCES = (5, 10, 20)  # Seconds.
ORDERS = 3


def source_audio(clip_id: str) -> np.ndarray:
  """The 16 kHz speech of a clip of ../shared/data: the .wav beside its video where there is one."""
  stem = SHARED / clip_id
  wav = stem.with_suffix(".wav")
  if wav.exists():
    return audio.load_audio(wav)
  videos = sorted(stem.parent.glob(stem.name + ".*"))
  if not videos:
    raise FileNotFoundError(f"{stem}.*: no source file for test clip {clip_id}")
  return audio.load_audio(videos[0])


def held_out_clips(data_dir: str) -> list:
  """The av test split's clips with audio: id, audio cut to the clip's frames, true landmarks."""
  config = landmark_av.get_config()
  config.data_dir = data_dir
  builder = train_landmark.get_builder(config)
  clips = []
  keys = ["clip_id", "has_audio", "landmarks", "neutral_landmarks"]
  for ex in input_pipeline.whole_clips(builder, config.test_split, keys):
    if not ex["has_audio"]:
      continue
    clip_id = ex["clip_id"].decode()
    n = len(ex["landmarks"])
    wave = source_audio(clip_id)[:n * SAMPLES_PER_FRAME]
    wave = np.pad(wave, (0, n * SAMPLES_PER_FRAME - len(wave)))
    clips.append({"id": clip_id, "wave": wave, "landmarks": ex["landmarks"],
                  "neutral": ex["neutral_landmarks"]})
  return clips


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkpoint", default=None,
                      help="stage 1's landmark.npz or training workdir (default: the shipped one)")
  parser.add_argument("--data-dir", default="/tmp/tfds_data")
  parser.add_argument("--json", default=None)
  args = parser.parse_args()
  model, params, _ = stages.get("landmark").load(
      args.checkpoint or ROOT / "emotalk_jax" / "assets" / "checkpoints" / "landmark.npz")
  encoder, encoder_config = whisper_weights.load_encoder()
  predict = jax.jit(train_landmark.predict_fn(model))
  neutral_emotion = np.zeros((1, landmark_model.EMOTION_VECTOR_SIZE), np.float32)
  neutral_emotion[0, emotions.EMOTIONS.index("neutral")] = 1.0
  clips = held_out_clips(args.data_dir)

  def features(wave):
    return whisper.speech_features(wave, encoder, encoder_config)

  def score(clip, speech):
    n = len(clip["landmarks"])
    index = np.minimum(np.arange(-(-n // train_landmark.CLIP_PAD) * train_landmark.CLIP_PAD), n - 1)
    batch = {"speech": speech[index][None], "neutral_landmarks": clip["neutral"][None],
             "emotion": neutral_emotion,
             "mel": np.zeros((1, len(index), audio.MEL_WINDOW, audio.N_MELS), np.float32)}
    pred = np.asarray(predict(params, batch), np.float64)[0, :n]
    return lipsync.lip_motion(face_graph.mouth_opening(pred * 128, np),
                              face_graph.mouth_opening(clip["landmarks"] * 128.0, np))

  scores = {c["id"]: {"alone": score(c, features(c["wave"]))} for c in clips}
  for seconds in SILENCES:
    pad = seconds * whisper.FPS
    for c in clips:
      wave = np.concatenate([np.zeros(pad * SAMPLES_PER_FRAME, np.float32), c["wave"]])
      scores[c["id"]][f"silence_{seconds}s"] = score(c, features(wave)[pad:])
  rng = np.random.default_rng(0)
  for _ in range(ORDERS):
    order = rng.permutation(len(clips))
    long_speech = features(np.concatenate([clips[i]["wave"] for i in order]))
    start = 0
    for i in order:
      c = clips[i]
      n = len(c["landmarks"])
      scores[c["id"]].setdefault("long_speech", []).append(score(c, long_speech[start:start + n]))
      start += n

  def mean(setting, key):
    values = [s[key] for clip in scores.values()
              for s in np.atleast_1d(clip[setting]) if np.isfinite(s[key])]
    return round(float(np.mean(values)), 3)

  settings = ["alone"] + [f"silence_{s}s" for s in SILENCES] + ["long_speech"]
  result = {
      "checkpoint": str(args.checkpoint or "shipped"),
      "clips": len(clips),
      "mouth_r": {s: mean(s, "r") for s in settings},
      "std_ratio": {s: mean(s, "std_ratio") for s in settings},
      "per_clip": scores,
  }
  text = json.dumps(result, indent=1)
  if args.json:
    pathlib.Path(args.json).write_text(text)
  print(text)


if __name__ == "__main__":
  main()
