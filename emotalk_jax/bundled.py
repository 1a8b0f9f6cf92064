"""Paths of the small redistributable media bundled with the package (see assets/LICENSES.md), and
of the project's shared real-data folder (never bundled)."""

import os
import pathlib

ASSETS_DIR = pathlib.Path(__file__).resolve().parent / "assets"

# A GRID corpus clip: 360x288, 25 fps, one speaker, 44.1 kHz audio, 3 s. CC BY 4.0.
GRID_CLIP = ASSETS_DIR / "bbaf2n.mpg"
# NASA portrait of Eileen Collins, 512x512 RGB. Public domain.
ASTRONAUT_PHOTO = ASSETS_DIR / "skimage_astronaut.png"
# CMU ARCTIC a0007, 16 kHz mono speech, 4 s.
ARCTIC_SPEECH = ASSETS_DIR / "pysptk_arctic_a0007.wav"
# The demo's neutral face: GRID speaker s4 at rest (clip priv3p, frame 0), 480x480 RGB, lips closed,
# eyes open, frontal. CC BY 4.0.
DEMO_PHOTO = ASSETS_DIR / "grid_s4_priv3p.png"
# The same speaker saying four GRID sentences, 16 kHz mono FLAC, 8.95 s. CC BY 4.0.
DEMO_SPEECH = ASSETS_DIR / "grid_s4_sentences.flac"
# The open mouth that generation draws mouths' insides from (`generate.mouth_interior`): GRID s4,
# clip bgim8s, frame 27, her upper teeth showing; 148x148 RGB and its 20 mouth landmarks. CC BY 4.0.
MOUTH_EXEMPLAR = ASSETS_DIR / "mouth_interior.png"
MOUTH_EXEMPLAR_LANDMARKS = ASSETS_DIR / "mouth_interior.json"

# Sample checkpoints of both stages (landmark.npz, texture.npz + .json configs; README.md says how
# they were
# made, from which data, their metrics and licence).
CHECKPOINTS_DIR = ASSETS_DIR / "checkpoints"


def shared_data_root() -> pathlib.Path:
  """The project's real data (research-only licences, never bundled): $EMOTALK_SHARED_DATA, else
  `../shared/data` next to the repository, else next to the working directory (an installed package
  has no repository); the first that exists, else the repository's (for the error message)."""
  if os.environ.get("EMOTALK_SHARED_DATA"):
    return pathlib.Path(os.environ["EMOTALK_SHARED_DATA"])
  repo_parent = ASSETS_DIR.parents[2]
  for root in (repo_parent, pathlib.Path.cwd().parent):
    if (root / "shared" / "data").is_dir():
      return root / "shared" / "data"
  return repo_parent / "shared" / "data"
