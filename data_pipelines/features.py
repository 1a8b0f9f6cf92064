"""The example format every emotalk TFDS builder writes, and the clip record a builder's layout scan
yields.

One example = one preprocessed clip (`emotalk_jax.media.preprocess`) at 25 fps:

| feature | shape / type | meaning |
|---|---|---|
| `clip_id` | text | unique within the dataset, e.g. `M030_front_angry_level_3_001` |
| `frames` | Video [T, S, S, 3] uint8 (JPEG per frame) | aligned face crops, S = 256 by default |
| `landmarks` | [T, 68, 2] float32 | smoothed landmarks in crop coordinates, [-1, 1] |
| `mel` | [T, 16, 80] float32 | log-mel window per frame (all LOG_MEL_FLOOR when `has_audio` is False) |
| `has_audio` | bool | False for clips without (usable) audio: train emotion-only losses on them |
| `detected` | [T] bool | face found in the frame (else filled from its neighbours) |
| `emotion` | ClassLabel over `emotalk_jax.emotions.EMOTIONS` | |
| `intensity` | float32 in [0, 1] | |
| `emotion_exact` | bool | False where the source label was mapped approximately (calm, boredom, ties, unlabelled) |
| `speaker` | text | dataset-prefixed speaker id, e.g. `mead/M030` |
| `dataset` | text | `mead`, `cremad`, `ravdess`, `folder` |
| `neutral_frame` | Image [S, S, 3] uint8 | the identity reference the model starts from |
| `neutral_landmarks` | [68, 2] float32 | its landmarks, [-1, 1] |
| `neutral_source` | ClassLabel(`speaker_neutral`, `first_frame`) | a neutral clip of the same speaker, or this clip's first frame |
| `fps` | float32 | 25 |
| `speech` | [T, 384] float16 | optional (`speech=True` configs): Whisper tiny.en features |

`speech` (only in configs that ask for it): `emotalk_jax.models.whisper.speech_features` of the
clip's audio, one vector per frame, encoded at the start of the encoder's window or, in configs with
`speech_offset_max` (e.g. `av`), after the clip's own seeded stretch of silence
(`common.speech_offset`); zeros when `has_audio` is False.
"""

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

from emotalk_jax import emotions
from emotalk_jax.media import audio
from emotalk_jax.models import face_graph

FRAME_SIZE = 256
SPEECH_DIM = 384  # Width of Whisper tiny.en's encoder: the optional `speech` feature.
NEUTRAL_SOURCES = ("speaker_neutral", "first_frame")


@dataclasses.dataclass(frozen=True)
class ClipSpec:
  """One raw clip found in a dataset's layout, before preprocessing.

  Attributes:
    clip_id: unique within the dataset.
    video_path: the clip's video file.
    audio_path: a separate audio file (MEAD's m4a, CREMA-D's wav, a wav beside a clip), or None to
      use the video's own track (or none).
    label: the emotion label mapped onto MEAD's classes.
    speaker: dataset-prefixed speaker id (speaker-disjoint splits group by it).
    dataset: short dataset name.
  """
  clip_id: str
  video_path: str
  audio_path: str | None
  label: emotions.Label
  speaker: str
  dataset: str


def features(frame_size: int = FRAME_SIZE, speech: bool = False) -> tfds.features.FeaturesDict:
  """The FeaturesDict of one example (see the module docstring).

  Args:
    frame_size: side S of the stored crops.
    speech: also the optional `speech` feature, [T, 384] float16.
  """
  n = face_graph.NUM_NODES
  extra = {}
  if speech:
    extra["speech"] = tfds.features.Tensor(shape=(None, SPEECH_DIM), dtype=np.float16)
  return tfds.features.FeaturesDict({
      "clip_id":
          tfds.features.Text(),
      "frames":
          tfds.features.Video(shape=(None, frame_size, frame_size, 3), encoding_format="jpeg"),
      "landmarks":
          tfds.features.Tensor(shape=(None, n, 2), dtype=np.float32),
      "mel":
          tfds.features.Tensor(shape=(None, audio.MEL_WINDOW, audio.N_MELS), dtype=np.float32),
      "has_audio":
          tfds.features.Scalar(dtype=np.bool_),
      "detected":
          tfds.features.Tensor(shape=(None,), dtype=np.bool_),
      "emotion":
          tfds.features.ClassLabel(names=list(emotions.EMOTIONS)),
      "intensity":
          tfds.features.Scalar(dtype=np.float32),
      "emotion_exact":
          tfds.features.Scalar(dtype=np.bool_),
      "speaker":
          tfds.features.Text(),
      "dataset":
          tfds.features.Text(),
      "neutral_frame":
          tfds.features.Image(shape=(frame_size, frame_size, 3)),
      "neutral_landmarks":
          tfds.features.Tensor(shape=(n, 2), dtype=np.float32),
      "neutral_source":
          tfds.features.ClassLabel(names=list(NEUTRAL_SOURCES)),
      "fps":
          tfds.features.Scalar(dtype=np.float32),
      **extra,
  })
