"""PNG plots of an evaluation: per-frame metric curves, and emotion probabilities over time.

Both read the `per_frame` dict of an `evaluate.evaluate_frames` result (null = skipped frame) and
write atomically (a temporary name renamed when complete).
"""

import os
import pathlib

import numpy as np

# (per-frame key, reference key or None, axis label) for each panel of the curves plot, in order.
_PANELS = (("psnr", None, "PSNR (dB)"), ("ssim", None, "SSIM"), ("cpbd", "cpbd_reference", "CPBD"),
           ("m_lmd", None, "LMD (px, 256 crop)"), ("csim", None, "CSIM"),
           ("mouth_opening", "mouth_opening_reference", "mouth opening (px)"))


def _series(values) -> np.ndarray:
  return np.array([np.nan if v is None else v for v in values], np.float64)


def _save(fig, path) -> pathlib.Path:
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.stem}.partial.png")
  try:
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)
  finally:
    plt.close(fig)
    tmp.unlink(missing_ok=True)
  return path


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top  (slow; only when plotting)
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def plot_curves(path, per_frame: dict, fps: float = 25.0, title: str = "") -> pathlib.Path | None:
  """One panel per available metric against time (s); the reference's values dashed. None if
  nothing to plot."""
  panels = [p for p in _PANELS if p[0] in per_frame]
  if not panels:
    return None
  plt = _pyplot()
  fig, axes = plt.subplots(len(panels),
                           1,
                           figsize=(7, 1.6 * len(panels) + 0.6),
                           sharex=True,
                           squeeze=False)
  for ax, (key, ref_key, label) in zip(axes[:, 0], panels):
    values = _series(per_frame[key])
    t = np.arange(len(values)) / fps
    ax.plot(t, values, lw=1.2, label="generated")
    if key == "m_lmd" and "f_lmd" in per_frame:
      ax.plot(t, _series(per_frame["f_lmd"]), lw=1.2, label="F-LMD")
      ax.lines[0].set_label("M-LMD")
    if ref_key and ref_key in per_frame:
      ref = _series(per_frame[ref_key])
      ax.plot(np.arange(len(ref)) / fps, ref, "--", lw=1.0, label="reference")
    if key == "mouth_opening" and "energy_db" in per_frame:
      energy = _series(per_frame["energy_db"])
      twin = ax.twinx()
      twin.plot(np.arange(len(energy)) / fps, energy, color="tab:gray", lw=0.8, alpha=0.7)
      twin.set_ylabel("speech (dB)", fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    if len(ax.lines) > 1:
      ax.legend(fontsize=7, loc="best")
  axes[-1, 0].set_xlabel("time (s)")
  if title:
    fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def plot_emotions(path, per_frame: dict, classes, fps: float = 25.0, target: str | None = None,
                  title: str = "") -> pathlib.Path | None:
  """Each class's probability against time (s); the target class drawn thick. None without
  probabilities."""
  if "emotion_probabilities" not in per_frame:
    return None
  probs = np.array(
      [[np.nan] * len(classes) if row is None else [np.nan if v is None else v
                                                    for v in row]
       for row in per_frame["emotion_probabilities"]], np.float64)
  plt = _pyplot()
  fig, ax = plt.subplots(figsize=(7, 2.8))
  t = np.arange(len(probs)) / fps
  for k, name in enumerate(classes):
    ax.plot(t,
            probs[:, k],
            lw=2.5 if name == target else 1.0,
            label=name + (" (target)" if name == target else ""))
  ax.set_ylim(0, 1)
  ax.set_xlabel("time (s)")
  ax.set_ylabel("probability")
  ax.legend(fontsize=7, ncol=4, loc="upper center")
  if title:
    ax.set_title(title, fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def plot_result(result: dict, stem) -> list[str]:
  """Writes `<stem>_curves.png` and `<stem>_emotion.png` (when there is something to draw); their
  paths."""
  stem = pathlib.Path(stem)
  per_frame = result.get("per_frame", {})
  fps = result.get("fps") or 25.0
  title = pathlib.Path((result.get("inputs") or {}).get("generated") or stem.name).name
  written = [plot_curves(stem.with_name(stem.name + "_curves.png"), per_frame, fps, title)]
  emotion = result.get("emotion")
  if emotion:
    written.append(plot_emotions(stem.with_name(stem.name + "_emotion.png"), per_frame,
                                 list(emotion["probabilities"]), fps, emotion.get("target"), title))
  return [str(p) for p in written if p is not None]
