"""Media in and out: audio, video, face detection, 68 landmarks, alignment, tracking, preprocessing
of clips.

Depends only on the package's base modules (`errors`, `bundled`, `emotions`); never on the networks.
"""
