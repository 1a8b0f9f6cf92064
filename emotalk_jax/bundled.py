"""Paths of the small redistributable media bundled with the package (see assets/LICENSES.md)."""

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

# Sample checkpoints of both stages (landmark.npz, texture.npz + .json configs; README.md says how
# they were
# made, from which data, their metrics and licence).
CHECKPOINTS_DIR = ASSETS_DIR / "checkpoints"
