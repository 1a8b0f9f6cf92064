"""Manifest mode: checks before running, per-row JSON and plots, a failing row recorded, the
summary table."""

import json

import numpy as np
import pytest

from emotalk_jax import bundled
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import manifest as eval_manifest
from emotalk_jax.media import video_io


@pytest.fixture
def folder(tmp_path):
  (tmp_path / "clips").mkdir()
  grid = tmp_path / "clips" / "grid.mpg"
  grid.write_bytes(bundled.GRID_CLIP.read_bytes())
  # No face.
  video_io.write_video(tmp_path / "clips" / "wall.mp4", np.full((6, 64, 64, 3), 120, np.uint8))
  return tmp_path


def _write(folder, text):
  path = folder / "eval.csv"
  path.write_text(text)
  return path


@pytest.mark.parametrize("text, problem", [
    ("", "is empty; it needs a header row"),
    ("generated,refrence\nclips/grid.mpg,clips/grid.mpg\n", "unknown column 'refrence'"),
    ("reference\nclips/grid.mpg\n", "missing column 'generated'"),
    ("generated,reference\n", "has a header but no rows"),
    ("generated\nclips/grid.mpg\nclips/nope.mp4\n",
     "line 3: generated 'clips/nope.mp4': no such file"),
    ("generated,source\nclips/grid.mpg,clips\n", "line 2: source 'clips': not a file"),
    ("generated,emotion\nclips/grid.mpg,joyful\n", "line 2: emotion 'joyful': unknown emotion"),
    ("generated,emotion\n,happy\n", "line 2: the 'generated' cell is empty"),
])
def test_bad_manifests_are_refused_before_anything_runs(folder, text, problem):
  with pytest.raises(InputError, match=problem):
    eval_manifest.read_manifest(_write(folder, text))


def test_rows_resolve_paths_and_names(folder):
  rows = eval_manifest.read_manifest(
      _write(
          folder, "Generated, Reference ,emotion,name\n"
          "clips/grid.mpg,,happy,\n"
          f"{folder / 'clips' / 'grid.mpg'},clips/grid.mpg,,\n"
          "clips/wall.mp4,,,grid\n"))
  assert [r["name"] for r in rows] == ["grid", "grid_2", "grid_3"]
  assert rows[0]["generated"] == str(folder / "clips" / "grid.mpg") and rows[0]["reference"] is None
  assert rows[1]["reference"] == str(
      folder / "clips" / "grid.mpg") and rows[0]["emotion"] == "happy"
  with pytest.raises(InputError, match="no such manifest file"):
    eval_manifest.read_manifest(folder / "absent.csv")


def test_a_failing_row_is_recorded_and_the_rest_go_on(folder):
  manifest = _write(
      folder,
      "generated,reference,name\nclips/grid.mpg,clips/grid.mpg,same\nclips/wall.mp4,,wall\n")
  out = folder / "out"
  seen = []
  summary = eval_manifest.evaluate_manifest(manifest, out, metrics=("image", "lmd"), max_frames=8,
                                            progress=lambda name, i, n: seen.append((name, i, n)))
  assert seen == [("same", 0, 2), ("wall", 1, 2)]
  assert summary["rows"] == 2 and [f["name"] for f in summary["failed"]] == ["wall"]
  assert "no face found" in summary["failed"][0]["error"]
  same = json.loads((out / "same.json").read_text())
  assert same["psnr"] == 100.0 and same["m_lmd"] == 0.0 and same["plots"] == [
      str(out / "same_curves.png")
  ]
  wall = json.loads((out / "wall.json").read_text())
  assert "wall.mp4: no face found" in wall["error"] and not (out / "wall_curves.png").exists()
  table = (out / "summary.md").read_text()
  assert "| video | frames | PSNR | SSIM |" in table
  assert "| same | 8 | 100 | 1 |" in table and "| **mean** | 8 | 100 | 1 |" in table
  assert "Failed rows:" in table and "* wall: " in table
  means = json.loads((out / "summary.json").read_text())["means"]
  assert means["PSNR"] == 100.0 and means["CSIM"] is None
  assert summary["means"] == means


def test_summary_table_means_skip_missing_values():
  rows = [{
      "name": "a",
      "result": {
          "frames": {
              "generated": 10
          },
          "psnr": 30.0,
          "emotion": {
              "correct": True
          }
      }
  }, {
      "name": "b",
      "result": {
          "frames": {
              "generated": 20
          },
          "psnr": 20.0,
          "emotion": {
              "correct": False
          }
      }
  }, {
      "name": "c",
      "result": {
          "frames": {
              "generated": 30
          },
          "emotion": {
              "correct": None
          }
      }
  }, {
      "name": "d",
      "error": "d.mp4: broken"
  }]
  table, means = eval_manifest.summary_table(rows)
  assert means["PSNR"] == 25.0 and means["emotion acc"] == 0.5 and means["frames"] == 20.0
  assert means["SSIM"] is None
  assert "| c | 30 |  |" in table and "* d: d.mp4: broken" in table
