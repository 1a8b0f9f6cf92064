"""End-to-end preprocessing of a clip or a photo: decode, track, smooth, align, crop, log-mel.

This is what the CLI, the dataset builders and generation call; each step is also a function of its
own (`video_io`, `audio`, `face`, `tracking`).
"""

import dataclasses
import pathlib
import warnings

import numpy as np
import tqdm

from emotalk_jax.media import audio
from emotalk_jax.media import face
from emotalk_jax.media import landmarks as lm
from emotalk_jax.media import tracking
from emotalk_jax.media import video_io


@dataclasses.dataclass
class Clip:
  """A preprocessed talking-face clip at a constant frame rate.

  Attributes:
    frames: [T, S, S, 3] uint8 RGB aligned crops.
    landmarks: [T, 68, 2] float32 smoothed landmarks in crop coordinates, [-1, 1].
    transforms: [T, 2, 3] float32 similarity transforms, full-frame pixels -> crop pixels.
    image_landmarks: [T, 68, 2] float32 raw (unsmoothed) landmarks in full-frame pixels.
    detected: [T] bool, whether the face was found in a frame (else filled from its neighbours).
    mel: [T, W, 80] float32 log-mel window per frame, or None when the clip has no usable audio.
    audio: [N] float32 mono 16 kHz aligned with frame 0, or None.
    fps: frames per second.
    source: the input file.
    num_detections: face-detector calls made while tracking.
    jitter_raw_px: mean frame-to-frame landmark motion in crop pixels before smoothing.
    jitter_smoothed_px: the same after smoothing.
  """
  frames: np.ndarray
  landmarks: np.ndarray
  transforms: np.ndarray
  image_landmarks: np.ndarray
  detected: np.ndarray
  mel: np.ndarray | None
  audio: np.ndarray | None
  fps: float
  source: str
  num_detections: int
  jitter_raw_px: float
  jitter_smoothed_px: float

  @property
  def size(self) -> int:
    return self.frames.shape[1]

  def summary(self) -> dict:
    return {
        "source": self.source,
        "frames": int(len(self.frames)),
        "fps": self.fps,
        "size": self.size,
        "frames_filled": int((~self.detected).sum()),
        "detector_calls": self.num_detections,
        "jitter_px_raw": round(self.jitter_raw_px, 3),
        "jitter_px_smoothed": round(self.jitter_smoothed_px, 3),
        "mel_shape": None if self.mel is None else list(self.mel.shape),
    }


def _clip_audio(video: video_io.Video, audio_path, num_frames: int, fps: float):
  """-> (wave [N] 16 kHz or None, mel windows [T, W, 80] or None) from `audio_path` or the
  video's track."""
  if audio_path is not None:
    wave = audio.load_audio(audio_path)
  elif video.audio is None:
    warnings.warn(
        f"{video.path}: has no audio stream; no mel features (usable for emotion-only training)")
    return None, None
  else:
    wave = video.audio
    if not np.max(np.abs(wave), initial=0.0) >= audio.SILENCE_PEAK:
      warnings.warn(f"{video.path}: its audio track is silent; no mel features")
      return None, None
  return wave, audio.mel_windows(audio.log_mel(wave), num_frames, fps=fps)


def preprocess_video(path,
                     *,
                     size: int = 256,
                     fps: float = 25.0,
                     face_index: int = 0,
                     audio_path=None,
                     detect_every: int = tracking.DETECT_EVERY,
                     progress: bool = False) -> Clip:
  """Decodes a video at `fps`, tracks and aligns the face, and computes per-frame log-mel windows.

  Args:
    path: any video file PyAV decodes (mp4, mpg, mov, flv, webm, ...).
    size: crop side in pixels (128 or 256).
    fps: output frame rate; frames are resampled by timestamp.
    face_index: which face when there are several (0 = largest).
    audio_path: a separate speech file to use instead of the video's own track.
    detect_every: run the face detector at least every this many frames (tracking in between).
    progress: show a progress bar while tracking.

  Raises:
    InputError: the file cannot be read, has no frames, no face in any frame, or bad audio.
  """
  return preprocess_decoded(video_io.read_video(path, fps=fps), size=size, face_index=face_index,
                            audio_path=audio_path, detect_every=detect_every, progress=progress)


def preprocess_decoded(video: video_io.Video,
                       *,
                       size: int = 256,
                       face_index: int = 0,
                       audio_path=None,
                       detect_every: int = tracking.DETECT_EVERY,
                       progress: bool = False) -> Clip:
  """`preprocess_video` on an already decoded `video_io.Video` (e.g. one cut with `max_frames`)."""
  frames = tqdm.tqdm(video.frames, desc=f"tracking {pathlib.Path(video.path).name}", unit="frame",
                     disable=not progress, leave=False)
  track = tracking.track_landmarks(frames,
                                   source=video.path,
                                   detect_every=detect_every,
                                   face_index=face_index)
  aligned = tracking.align_video(video.frames, source=video.path, size=size, track=track)
  raw_in_crop = face.transform_points(track.landmarks, aligned.transforms)
  wave, mel = _clip_audio(video, audio_path, len(video.frames), video.fps)
  return Clip(frames=aligned.crops,
              landmarks=lm.normalize(aligned.landmarks, size),
              transforms=aligned.transforms.astype(np.float32),
              image_landmarks=track.landmarks.astype(np.float32),
              detected=track.detected,
              mel=mel,
              audio=wave,
              fps=float(video.fps),
              source=video.path,
              num_detections=track.num_detections,
              jitter_raw_px=tracking.jitter(raw_in_crop),
              jitter_smoothed_px=tracking.jitter(aligned.landmarks))


def save_clip(clip: Clip, path) -> pathlib.Path:
  """Writes a clip's arrays to a compressed .npz (no pickled objects); atomic via a temporary
  name."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  arrays = {
      "frames": clip.frames,
      "landmarks": clip.landmarks,
      "transforms": clip.transforms,
      "image_landmarks": clip.image_landmarks,
      "detected": clip.detected,
      "fps": np.float32(clip.fps)
  }
  if clip.mel is not None:
    arrays["mel"] = clip.mel
  tmp = path.with_name(f".{path.stem}.partial.npz")
  try:
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def load_clip_arrays(path) -> dict:
  """Reads the arrays `save_clip` wrote (pickle disabled)."""
  with np.load(path, allow_pickle=False) as data:
    return {k: data[k] for k in data.files}
