"""Face detection, 68-point landmarks and similarity alignment to a canonical crop.

Detection is dlib's HOG frontal face detector; landmarks come from the 68-point (iBUG 300-W layout)
shape predictor shipped in `face_recognition_models`. These are the only weights used and nothing is
downloaded.
Coordinates follow `emotalk_jax.media.landmarks`: pixel centre j sits at x=j (OpenCV/dlib
  convention).

Alignment maps a face onto the canonical template (`assets/face_template.json`, made by
`tools/make_face_template.py`) with a similarity transform fitted on the points that do not move
with speech (brows, nose, eyes). A transform `M` is a [2, 3] float64 matrix taking image pixels to
crop pixels: `crop_xy = M[:, :2] @ image_xy + M[:, 2]`.
"""

import functools
import importlib.util
import json
import pathlib
import threading
import typing
import warnings

import cv2
import numpy as np

from emotalk_jax import bundled
from emotalk_jax import errors
from emotalk_jax.media import landmarks as landmarks_lib

TEMPLATE_PATH = bundled.ASSETS_DIR / "face_template.json"

# iBUG 68-point index groups.
JAW = np.arange(0, 17)
BROWS = np.arange(17, 27)
EYES = np.arange(36, 48)
RIGHT_EYE = np.arange(36, 42)  # The subject's right eye: image left in a frontal face.
LEFT_EYE = np.arange(42, 48)
MOUTH = np.arange(48, 68)
# Points that follow the skull rather than speech or expression: alignment is fitted on these.
STABLE_POINTS = np.arange(17, 48)

# Detection runs on a copy whose longest side is this many pixels. Measured on the 58 photos in
# shared/data/faces: 320, 400 and 480 find the same faces, and 320 costs 8 ms on a 512x512 frame
# against
# 13 and 17 ms. A face needs about 80 px in the detector's image, so one pass finds faces wider than
# a
# quarter of the longest side, and the upsampled retry 1/8. (Video re-detection sizes its copy to
# the face
# it follows, never below this.)
DETECT_SIZE = 320
# Photos are searched at twice that (16 ms for a large photo), so that every face wider than 1/8 of
# the
# longest side is found in the first pass and several faces of different sizes are all reported; on
# the
# 58 shared photos this adds no false detection.
PHOTO_DETECT_SIZE = 640
# A face whose `FaceDetector.score` is below this is rejected (see there for measurements).
MIN_FACE_SCORE = -0.3
# The most (mean over the 68 points, x the eyes' distance) the landmark-derived box may move a
# photo's landmarks from the detector box's (`refined_landmarks`). On the 57 faces of the photos in
# shared/data/faces it moves them 0.007-0.048. Above that (0.057-0.18, five faces) three had their
# mouth points moved down off the lips (seen in crops); a grimace and a profile are unclear.
MAX_REFRAMING_SHIFT = 0.05
# The shape predictor returns integer pixels. It runs on a region resampled so that the face box is
# this
# wide, which gives sub-pixel landmarks for faces smaller than this and a fixed relative precision
# above.
# Measured jitter of the non-mouth points in the 256 crop (six real clips): 1.23, 1.09, 0.97 and
# 0.92 px
# for 128, 192, 256 and 320; 256 costs about 0.5 ms a frame more than 128.
PREDICT_SIZE = 256
# `FaceDetector.score` views the face with its predictor box this wide in a window this wide:
# measured
# 80/100 px separates faces from non-faces best at the lowest cost (the detector's window is 80 px).
SCORE_SIZE = 80
SCORE_WINDOW = 100


class Box(typing.NamedTuple):
  """An axis-aligned face box: its edges in image pixel coordinates (pixel centre j at j, edges
  at j +- 0.5)."""
  left: float
  top: float
  right: float
  bottom: float

  @property
  def width(self) -> float:
    return self.right - self.left

  @property
  def height(self) -> float:
    return self.bottom - self.top

  @property
  def area(self) -> float:
    return max(self.width, 0.0) * max(self.height, 0.0)

  @property
  def centre(self) -> tuple[float, float]:
    return (0.5 * (self.left + self.right), 0.5 * (self.top + self.bottom))


def _as_rgb_uint8(image) -> np.ndarray:
  image = np.asarray(image)
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.ndim != 3 or image.shape[-1] != 3:
    raise ValueError(f"expected an [H, W, 3] RGB image, got shape {image.shape}")
  if image.dtype != np.uint8:
    raise ValueError(f"expected a uint8 image, got {image.dtype}")
  return image


class FaceDetector:
  """dlib HOG face detector plus the 68-point shape predictor, both loaded on first use.

  Attributes:
    detect_size: the longest side, in pixels, of the downscaled copy the detector runs on.
  """

  def __init__(self, detect_size: int = DETECT_SIZE):
    self.detect_size = int(detect_size)
    self._lock = threading.Lock()
    self._detector = None
    self._predictor = None

  def _models(self):
    with self._lock:
      if self._predictor is None:
        # Slow import; only when faces are needed.
        import dlib  # pylint: disable=g-import-not-at-top
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(str(_shape_predictor_file()))
    return self._detector, self._predictor

  def detect(self, image, upsample=(0, 1), adjust_threshold: float = 0.0,
             detect_size: int | None = None) -> list[Box]:
    """Finds faces; boxes in full-resolution pixels, largest first.

    Args:
      image: [H, W, 3] uint8 RGB.
      upsample: dlib upsampling levels (each doubles the image) tried in order on the downscaled
        copy until one finds a face. The default retries once for small faces.
      adjust_threshold: added to the detector's decision threshold; negative finds harder faces and
        more false positives.
      detect_size: overrides `self.detect_size` (the longest side of the copy searched).

    Returns:
      A list of `Box`, sorted by area, largest first; empty when no face was found.
    """
    detector, _ = self._models()
    image = _as_rgb_uint8(image)
    height, width = image.shape[:2]
    scale = min(1.0, (detect_size or self.detect_size) / max(height, width))
    if scale < 1.0:
      small = cv2.resize(image, (max(1, round(width * scale)), max(1, round(height * scale))),
                         interpolation=cv2.INTER_AREA)
    else:
      small = np.ascontiguousarray(image)
    # Actual per-axis factors after rounding the downscaled size.
    sx, sy = small.shape[1] / width, small.shape[0] / height
    for level in upsample:
      rects, _, _ = detector.run(small, int(level), float(adjust_threshold))
      if len(rects):
        # dlib's rectangles hold inclusive pixel indices; a Box holds pixel edges (index - 0.5,
        # index + 0.5),
        # mapped back with cv2.resize's convention x_full + 0.5 = (x_small + 0.5) / scale.
        boxes = [Box(r.left() / sx - 0.5, r.top() / sy - 0.5, (r.right() + 1) / sx - 0.5,
                     (r.bottom() + 1) / sy - 0.5) for r in rects]
        return sorted(boxes, key=lambda b: -b.area)
    return []

  def landmarks(self, image, box: Box) -> np.ndarray:
    """Runs the shape predictor in `box`; returns [68, 2] float32 image pixels.

    The region around the box is resampled so the box is `PREDICT_SIZE` pixels wide: the predictor
    rounds to integer pixels, and this keeps that rounding at a fixed, small fraction of the face.
    """
    import dlib  # pylint: disable=g-import-not-at-top
    _, predictor = self._models()
    image = _as_rgb_uint8(image)
    margin = PREDICT_SIZE // 4
    k = PREDICT_SIZE / max(box.width, 1.0)
    out_h = int(round(box.height * k))
    # The box's edges land on the edges of the region's pixels margin .. margin + PREDICT_SIZE - 1.
    warp = np.array([[k, 0.0, margin - 0.5 - k * box.left],
                     [0.0, k, margin - 0.5 - k * box.top]])
    region = _warp(image, warp, (PREDICT_SIZE + 2 * margin, out_h + 2 * margin),
                   cv2.BORDER_CONSTANT)
    # dlib would average the channels itself; one fused OpenCV pass is faster (0.4 ms a face).
    region = cv2.transform(region, np.full((1, 3), 1 / 3, np.float32))
    rect = dlib.rectangle(margin, margin, margin + PREDICT_SIZE - 1, margin + out_h - 1)
    shape = predictor(region, rect)
    pts = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
    return transform_points(pts, invert(warp)).astype(np.float32)

  def score(self, image, landmarks_px) -> float:
    """How face-like the image is at these landmarks: dlib's HOG detector score (its threshold is
    0).

    The face is resampled upright, with its predictor box `SCORE_SIZE` pixels wide, into a window
    barely larger than the detector's, so one cheap detector pass (under 1 ms) checks just this
    face. Measured on 13 real clips (GRID, MEAD, HDTF, LRS2, VoxCeleb2, ...): tracked faces score
    0.75 or more, shapes fitted to background beside, above or below the face -1.08 or less (-3 when
    nothing at all is found); the faces in the 58 shared photos (harder poses, glasses, black and
    white) 0.08 or more.
    """
    detector, _ = self._models()
    cx, cy, side = _template_asset()["predictor_box"]
    k = SCORE_SIZE / side
    window = SCORE_WINDOW
    # Template units (crop px - 0.5 at size 2) -> window px, predictor box centred.
    place = np.array([[k, 0.0, (window - 1) / 2 - k * (cx + 0.5)],
                      [0.0, k, (window - 1) / 2 - k * (cy + 0.5)]])
    # Plain bilinear: measured, anti-aliasing here changes no decision and costs 0.5 ms.
    patch = _warp(_as_rgb_uint8(image), compose(place, align_transform(landmarks_px, size=2)),
                  (window, window), cv2.BORDER_REPLICATE)
    _, scores, _ = detector.run(patch, 0, -2.0)
    return float(max(scores)) if len(scores) else -3.0


def _shape_predictor_file() -> pathlib.Path:
  """dlib's 68-point model in the `face_recognition_models` package, found without importing it
  (its import costs 0.1 s: it loads pkg_resources)."""
  package = importlib.util.find_spec("face_recognition_models").submodule_search_locations[0]
  return pathlib.Path(package) / "models" / "shape_predictor_68_face_landmarks.dat"


@functools.lru_cache(maxsize=1)
def default_detector() -> FaceDetector:
  """The process-wide detector (models load once, on first use)."""
  return FaceDetector()


def face_index_problem(faces: int, face_index: int) -> str:
  return (f"face_index={face_index} is out of range: {faces} face{'s' if faces != 1 else ''} found "
          f"(0 = largest, up to {faces - 1})")


def search_faces(image,
                 detector: FaceDetector | None = None,
                 lower_threshold: bool = True) -> list[Box]:
  """A thorough search for all faces (photos, and the start of a video); largest first, [] if none.

  Searches a copy up to `PHOTO_DETECT_SIZE` pixels, upsampled once when nothing is found (faces down
  to about 1/16 of the longest side), then, if `lower_threshold`, again with a lower detector
  threshold. When there are several faces, detections whose landmarks fail `FaceDetector.score` are
  dropped.
  """
  detector = detector or default_detector()
  boxes = detector.detect(image, upsample=(0, 1), detect_size=PHOTO_DETECT_SIZE)
  if not boxes and lower_threshold:
    # Measured: -0.5 recovers e.g. a frowning, tilted face (liveportrait/d8.jpg) while background
    # patches
    # of the shared photos all score below -0.8.
    boxes = detector.detect(image,
                            upsample=(0, 1),
                            adjust_threshold=-0.5,
                            detect_size=PHOTO_DETECT_SIZE)
  if len(boxes) > 1:
    # Textures (e.g. a spacesuit's patches) can pass the detector at the size of the real face; the
    # check
    # at the fitted landmarks rejects most (measured: -1.2 and -0.6 against 0.1 to 1.8 for real
    # faces).
    scores = [detector.score(image, detector.landmarks(image, box)) for box in boxes]
    kept = [box for box, score in zip(boxes, scores) if score >= MIN_FACE_SCORE]
    boxes = kept or [boxes[int(np.argmax(scores))]]
  return boxes


def find_faces(image, source="<image>", detector: FaceDetector | None = None) -> list[Box]:
  """`search_faces`, raising NoFaceError (an InputError naming `source`) when there is no face."""
  boxes = search_faces(image, detector)
  if not boxes:
    raise errors.NoFaceError(
        source, "no face found (faces must be roughly frontal and at least ~1/16 of the "
        "image's longest side)")
  return boxes


def face_landmarks(image, source="<image>", face_index: int = 0,
                   detector: FaceDetector | None = None) -> np.ndarray:
  """68 landmarks of one face in a photo: the largest by default.

  Args:
    image: [H, W, 3] uint8 RGB.
    source: the file name used in warnings and errors.
    face_index: which face when there are several, by decreasing size (0 = largest).
    detector: a `FaceDetector`; the shared default when None.

  Returns:
    [68, 2] float32 landmark pixels.

  Raises:
    InputError: when there is no face, or `face_index` is out of range.
  """
  detector = detector or default_detector()
  boxes = find_faces(image, source, detector)
  if not 0 <= face_index < len(boxes):
    raise errors.InputError(source, face_index_problem(len(boxes), face_index))
  if len(boxes) > 1:
    warnings.warn(
        f"{source}: {len(boxes)} faces found; using face {face_index} "
        f"({'the largest' if face_index == 0 else 'by decreasing size'}); "
        f"pick another with face_index (0..{len(boxes) - 1}, --face-index on the command line)",
        stacklevel=2)
  return refined_landmarks(detector, image, boxes[face_index])


def refined_landmarks(detector: FaceDetector, image, box: Box) -> np.ndarray:
  """[68, 2] landmarks of the face in the detector's `box`, found again in the landmark-derived box
  (`predictor_box`) that video tracking uses, so that photos and videos are framed alike.

  Where that second pass moves the points by more than `MAX_REFRAMING_SHIFT` its box was framed
  wrongly, and the detector box's points are returned: the framing comes from the brows, eyes and
  nose, and glasses, blur or a grimace there can frame the face too large or too low, which the
  predictor follows (harry.jpg of ../shared/data/faces: the mouth 18 px under the lips, the chin
  on the collar).
  """
  rough = detector.landmarks(image, box)
  refined = detector.landmarks(image, predictor_box(rough))
  eyes = np.linalg.norm(rough[RIGHT_EYE].mean(0) - rough[LEFT_EYE].mean(0))
  shift = np.linalg.norm(refined - rough, axis=-1).mean()
  return refined if shift <= MAX_REFRAMING_SHIFT * eyes else rough


#  -------------------------------------------------------------------------------------------------
# Canonical template and similarity alignment.


@functools.lru_cache(maxsize=1)
def _template_asset() -> dict:
  with open(TEMPLATE_PATH, encoding="utf-8") as f:
    asset = json.load(f)
  points = np.asarray(asset["points"], np.float64)
  if points.shape != (68, 2):
    raise ValueError(f"{TEMPLATE_PATH}: expected 68x2 points, got {points.shape}")
  return asset


def template(size: int | None = None) -> np.ndarray:
  """The canonical face: [68, 2] float32 in [-1, 1] crop coordinates, or crop pixels when `size`
  is given."""
  points = np.asarray(_template_asset()["points"], np.float32)
  return points if size is None else landmarks_lib.denormalize(points, size)


def fit_similarity(src, dst, weights=None) -> np.ndarray:
  """Least-squares similarity (rotation, uniform scale, translation; no reflection) taking src to
  dst.

  Args:
    src: [..., N, 2] points.
    dst: [..., N, 2] points (broadcast against src).
    weights: optional [N] non-negative point weights.

  Returns:
    [..., 2, 3] float64 transforms.
  """
  src = np.asarray(src, np.float64)
  dst = np.asarray(dst, np.float64)
  src, dst = np.broadcast_arrays(src, dst)
  w = np.ones(src.shape[-2]) if weights is None else np.asarray(weights, np.float64)
  w = w / w.sum()
  # In complex form the model is d = z * s + t with z = scale * exp(i * angle); its least-squares
  # solution
  # is the 2-D case of Umeyama's closed form.
  s = src[..., 0] + 1j * src[..., 1]
  d = dst[..., 0] + 1j * dst[..., 1]
  s_mean = (w * s).sum(-1, keepdims=True)
  d_mean = (w * d).sum(-1, keepdims=True)
  sc, dc = s - s_mean, d - d_mean
  z = (w * np.conj(sc) * dc).sum(-1) / np.maximum((w * np.abs(sc) ** 2).sum(-1), 1e-12)
  t = d_mean[..., 0] - z * s_mean[..., 0]
  out = np.empty(src.shape[:-2] + (2, 3))
  out[..., 0, 0], out[..., 0, 1], out[..., 0, 2] = z.real, -z.imag, t.real
  out[..., 1, 0], out[..., 1, 1], out[..., 1, 2] = z.imag, z.real, t.imag
  return out


def align_transform(landmarks_px, size: int = 256, points=STABLE_POINTS) -> np.ndarray:
  """Similarity transform from image pixels to a `size` crop in which the face matches the template.

  Args:
    landmarks_px: [..., 68, 2] image pixels.
    size: crop side in pixels.
    points: landmark indices the fit uses; by default brows, nose and eyes (not jaw or mouth, which
      move with speech).

  Returns:
    [..., 2, 3] float64 transforms (image px -> crop px).
  """
  landmarks_px = np.asarray(landmarks_px, np.float64)
  if landmarks_px.shape[-2:] != (68, 2):
    raise ValueError(f"expected [..., 68, 2] landmarks, got {landmarks_px.shape}")
  points = np.asarray(points)
  return fit_similarity(landmarks_px[..., points, :], template(size).astype(np.float64)[points])


def invert(transform) -> np.ndarray:
  """Inverse of [..., 2, 3] affine transforms."""
  transform = np.asarray(transform, np.float64)
  a = transform[..., :2]
  a_inv = np.linalg.inv(a)
  t_inv = -np.einsum("...ij,...j->...i", a_inv, transform[..., 2])
  return np.concatenate([a_inv, t_inv[..., None]], axis=-1)


def compose(outer, inner) -> np.ndarray:
  """The [..., 2, 3] transform applying `inner` first, then `outer`."""
  outer = np.asarray(outer, np.float64)
  inner = np.asarray(inner, np.float64)
  a = outer[..., :2] @ inner[..., :2]
  t = np.einsum("...ij,...j->...i", outer[..., :2], inner[..., 2]) + outer[..., 2]
  return np.concatenate([a, t[..., None]], axis=-1)


def transform_points(points, transform) -> np.ndarray:
  """Applies [..., 2, 3] transforms to [..., N, 2] points (broadcasting leading axes)."""
  points = np.asarray(points)
  transform = np.asarray(transform, np.float64)
  out = np.einsum("...ij,...nj->...ni", transform[..., :2], points.astype(np.float64))
  return (
      out +
      transform[..., None, :, 2]).astype(points.dtype if points.dtype.kind == "f" else np.float64)


def transform_scale(transform) -> np.ndarray:
  """Uniform scale factor of [..., 2, 3] similarity transforms."""
  transform = np.asarray(transform, np.float64)
  return np.sqrt(np.abs(np.linalg.det(transform[..., :2])))


_BORDERS = {
    "reflect": cv2.BORDER_REFLECT_101,
    "replicate": cv2.BORDER_REPLICATE,
    "constant": cv2.BORDER_CONSTANT
}


def _warp(image, transform, out_wh, border, interpolation=cv2.INTER_LINEAR) -> np.ndarray:
  return cv2.warpAffine(image, np.asarray(transform, np.float64), tuple(int(v) for v in out_wh),
                        flags=interpolation, borderMode=border)


def crop(image, transform, size: int = 256, border: str = "reflect") -> np.ndarray:
  """Warps an image into a [size, size, C] crop with transform (image px -> crop px).

  Bicubic resampling; when the face shrinks by more than 1.5x, the needed region is first reduced by
  area averaging so fine texture does not alias.

  Args:
    image: [H, W, C] uint8 (or float) image.
    transform: [2, 3] image px -> crop px, e.g. from `align_transform`.
    size: crop side in pixels.
    border: how pixels outside the image are filled: "reflect" (default), "replicate" or "constant".
  """
  image = np.asarray(image)
  transform = np.asarray(transform, np.float64)
  border_mode = _BORDERS[border]
  scale = float(transform_scale(transform))
  if scale < 1 / 1.5:
    # Bounding box (with a margin for the filter) of the crop's footprint in the image.
    corners = transform_points(
        np.array([[-1, -1], [size, -1], [-1, size], [size, size]], np.float64), invert(transform))
    height, width = image.shape[:2]
    # Margin so the bicubic taps after downscaling never reach the region's inner edges.
    pad = int(np.ceil(3 / scale)) + 1
    x0, y0 = np.floor(corners.min(0)).astype(int) - pad
    x1, y1 = np.ceil(corners.max(0)).astype(int) + pad + 1
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, width), min(y1, height)
    if x1 - x0 >= 2 and y1 - y0 >= 2:
      region = image[y0:y1, x0:x1]
      new_w, new_h = max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))
      # Where the footprint leaves the image the region ends at the image edge, so the border mode
      # acts
      # there as it would on the whole image.
      small = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
      fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
      # cv2.resize maps pixel centres as x' = (x + 0.5) * f - 0.5 (relative to the region's origin).
      to_small = np.array([[fx, 0.0, 0.5 * fx - 0.5 - fx * x0], [0.0, fy,
                                                                 0.5 * fy - 0.5 - fy * y0]])
      return _warp(small, compose(transform, invert(to_small)), (size, size), border_mode,
                   cv2.INTER_CUBIC)
  return _warp(image, transform, (size, size), border_mode, cv2.INTER_CUBIC)


def crop_mask(size: int, feather: float = 0.1) -> np.ndarray:
  """[size, size] float32 blending mask: 1 inside, easing to 0 over `feather * size` pixels at
  the edges."""
  ramp = max(feather * size, 1.0)
  # Distance of each pixel centre from the nearest crop edge, minus one pixel: the outermost ring,
  # where
  # resampling sees the border fill, gets zero weight.
  idx = np.arange(size, dtype=np.float32)
  edge = np.minimum(idx + 0.5, size - 0.5 - idx) - 1.0
  dist = np.minimum(edge[:, None], edge[None, :])
  x = np.clip(dist / ramp, 0.0, 1.0)
  return (x * x * (3.0 - 2.0 * x)).astype(np.float32)  # smoothstep: no visible seam at either end


def paste_back(image, face_crop, transform, feather: float = 0.1, mask=None) -> np.ndarray:
  """Inverse-warps a (generated) crop into the full image with a soft-edged mask.

  Args:
    image: [H, W, 3] uint8 original frame.
    face_crop: [S, S, 3] crop in the frame's aligned coordinates (any S, e.g. 128 or 256).
    transform: [2, 3] image px -> crop px for a crop of side S (from `align_transform(...,
      size=S)`).
    feather: width of the soft edge as a fraction of S (ignored when `mask` is given).
    mask: optional [S, S] float weights in [0, 1] (e.g. a face-shaped mask); default `crop_mask`.

  Returns:
    A new [H, W, 3] uint8 image; pixels outside the crop's footprint are untouched.
  """
  image = np.asarray(image)
  face_crop = np.asarray(face_crop)
  size = face_crop.shape[0]
  if face_crop.shape[1] != size:
    raise ValueError(f"expected a square crop, got {face_crop.shape}")
  weights = crop_mask(size, feather) if mask is None else np.asarray(mask, np.float32)
  transform = np.asarray(transform, np.float64)
  shrink = 1.0 / float(transform_scale(transform))  # image px per crop px
  if shrink < 1 / 1.5:
    # The crop lands smaller than it is: area-average it first so it does not alias (as in `crop`).
    small = max(2, round(size * shrink))
    face_crop = cv2.resize(face_crop, (small, small), interpolation=cv2.INTER_AREA)
    weights = cv2.resize(weights, (small, small), interpolation=cv2.INTER_AREA)
    f = small / size  # crop px -> small px, with cv2.resize's pixel-centre convention
    transform = compose(np.array([[f, 0.0, 0.5 * f - 0.5], [0.0, f, 0.5 * f - 0.5]]), transform)
    size = small
  inverse = invert(transform)
  height, width = image.shape[:2]
  corners = transform_points(np.array([[-1, -1], [size, -1], [-1, size], [size, size]], np.float64),
                             inverse)
  x0, y0 = np.maximum(np.floor(corners.min(0)).astype(int), 0)
  x1, y1 = np.minimum(np.ceil(corners.max(0)).astype(int) + 1, [width, height])
  out = image.copy()
  if x1 <= x0 or y1 <= y0:
    return out
  # Warp only into the crop's bounding box in the frame: matters for 1080p frames.
  shift = np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]])
  to_crop = compose(transform, shift)  # region px -> crop px
  flags = cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP
  wh = (x1 - x0, y1 - y0)
  warped = cv2.warpAffine(face_crop, to_crop, wh, flags=flags, borderMode=cv2.BORDER_REPLICATE)
  alpha = cv2.warpAffine(weights, to_crop, wh, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
  alpha = np.clip(alpha, 0.0, 1.0)[..., None]
  region = out[y0:y1, x0:x1].astype(np.float32)
  blended = region + alpha * (warped.astype(np.float32) - region)
  inside = alpha[..., 0] > 0
  out[y0:y1, x0:x1][inside] = np.clip(np.rint(blended[inside]), 0, 255).astype(image.dtype)
  return out


def predictor_box(landmarks_px) -> Box:
  """The box the shape predictor expects for a face with these landmarks.

  The template asset stores where dlib's detector puts its (square) box relative to the template;
  mapping it through the landmarks' alignment gives a box that does not depend on detector noise, so
  tracking and re-detection feed the predictor consistently framed boxes.
  """
  cx, cy, side = _template_asset()["predictor_box"]
  # size 2: crop px == template units + 0.5
  to_image = invert(align_transform(landmarks_px, size=2))
  centre = transform_points(np.array([[cx, cy]]) + 0.5, to_image)[0]
  half = 0.5 * side * float(transform_scale(to_image))
  return Box(centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)


class AlignedFace(typing.NamedTuple):
  """A face aligned to the template.

  Attributes:
    crop: [S, S, 3] uint8 RGB crop.
    landmarks: [68, 2] float32 landmarks in crop pixels.
    transform: [2, 3] float64 image px -> crop px (for `paste_back`).
  """
  crop: np.ndarray
  landmarks: np.ndarray
  transform: np.ndarray


def align_face(image, source="<image>", size: int = 256, face_index: int = 0,
               detector: FaceDetector | None = None, border: str = "reflect") -> AlignedFace:
  """Finds a face in a photo and crops it aligned to the template (see `face_landmarks` for
  errors; `border` as in `crop`)."""
  return align_points(image, face_landmarks(image, source, face_index, detector), size, border)


def align_points(image, points, size: int = 256, border: str = "reflect") -> AlignedFace:
  """The face at `points` ([68, 2] image px, e.g. `face_landmarks`) cropped aligned to the
  template."""
  transform = align_transform(points, size)
  return AlignedFace(crop(image, transform, size, border), transform_points(points, transform),
                     transform)
