"""`emotalk evaluate` harness forms beside the stage forms; bad input -> `emotalk: error: <file>:
<problem>`."""

import json

import pytest

from emotalk_jax import bundled
from emotalk_jax.cli import main as cli
from emotalk_jax import stages

GRID = str(bundled.GRID_CLIP)


def _run(capsys, *argv):
  rc = cli.main(["evaluate", *argv])
  out, err = capsys.readouterr()
  return rc, out, err


def test_single_video(tmp_path, capsys):
  out = tmp_path / "res" / "grid.json"
  rc, stdout, _ = _run(capsys, "--generated", GRID, "--reference", GRID, "--json", str(out),
                       "--metrics", "image,lmd", "--max-frames", "6")
  assert rc == 0
  printed = json.loads(stdout)
  assert printed["json"] == str(out) and printed["psnr"] == 100.0 and "per_frame" not in printed
  saved = json.loads(out.read_text())
  assert saved["m_lmd"] == 0.0 and len(saved["per_frame"]["psnr"]) == 6
  curves = tmp_path / "res" / "grid_curves.png"
  assert printed["plots"] == [str(curves)] and curves.exists()
  rc, stdout, _ = _run(capsys, "--generated", GRID, "--json", str(tmp_path / "b.json"), "--metrics",
                       "cpbd", "--max-frames", "3", "--no-plots")
  assert rc == 0 and "plots" not in json.loads(stdout) and not (tmp_path / "b_curves.png").exists()


def test_manifest(tmp_path, capsys):
  manifest = tmp_path / "eval.csv"
  manifest.write_text(f"generated,reference\n{GRID},{GRID}\n")
  rc, stdout, err = _run(capsys, "--manifest", str(manifest), "--out-dir", str(tmp_path / "out"),
                         "--metrics", "image", "--max-frames", "4", "--no-plots")
  assert rc == 0 and "evaluating 1/1: bbaf2n" in err
  summary = json.loads(stdout)
  assert summary["rows"] == 1 and summary["failed"] == [] and summary["means"]["PSNR"] == 100.0
  assert (tmp_path / "out" / "bbaf2n.json").exists() and (tmp_path / "out" / "summary.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["--generated", "missing.mp4"], "emotalk: error: missing.mp4: no such file"),
    ([], "emotalk: error: evaluate: give a stage (landmark), --generated VIDEO, or --manifest CSV"),
    (["--manifest", "m.csv"], "--manifest needs --out-dir DIR"),
    (["--manifest", "m.csv", "--out-dir", "o", "--reference", GRID], "--reference is per video"),
    (["--manifest", "m.csv", "--generated", GRID], "either --generated VIDEO or --manifest CSV"),
    (["--generated", GRID, "--out-dir", "o"], "--out-dir is for --manifest"),
    (["--generated", GRID, "--metrics", "image,fid"
     ], "emotalk: error: --metrics: unknown metric group 'fid'"),
    (["--generated", GRID, "--max-frames", "0"], "--max-frames: must be at least 1"),
    (["--generated", GRID, "--emotion-model", "nope.h5", "--metrics", "emotion"
     ], "nope.h5: no such model file"),
    (["--generated", GRID, "landmark"], "emotalk: error: evaluate landmark: harness options"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
  rc, stdout, err = _run(capsys, *argv)
  assert rc == 2 and stdout == ""
  assert message in err and "Traceback" not in err


def test_bad_manifest_names_the_file(tmp_path, capsys):
  manifest = tmp_path / "eval.csv"
  manifest.write_text("video\nx.mp4\n")
  rc, _, err = _run(capsys, "--manifest", str(manifest), "--out-dir", str(tmp_path / "o"))
  assert rc == 2 and f"emotalk: error: {manifest}: unknown column 'video'" in err


def test_stage_forms_still_parse():
  args = cli.build_parser().parse_args(
      ["evaluate", "landmark", "--config", "c.py", "--workdir", "w"])
  assert args.stage == "landmark" and args.flags == ["--config", "c.py", "--workdir", "w"]
  assert args.generated is None and args.func is cli.cmd_evaluate
  assert list(stages.STAGES) == ["landmark", "texture"]
  harness = cli.build_parser().parse_args(
      ["evaluate", "--generated", "g.mp4", "--emotion", "happy"])
  assert harness.stage is None and harness.generated == "g.mp4" and harness.flags == []
  for what in ("evaluate", "emotion-ceiling"):
    assert cli.build_parser().parse_args(["bench", what]).what == what
