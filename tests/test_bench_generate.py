"""Tests for the generation benchmark's reporting (emotalk_jax/bench/generate.py); its runs take
minutes and are not run here."""

from emotalk_jax.bench import generate as bench_generate
from emotalk_jax.cli import main as cli


def _run(fps, peak):
  return {"frames": 250, "first_frame_seconds": 2.5, "startup_seconds": 1.0,
          "wall_seconds": round(250 / fps, 2), "cpu_seconds": 1.6 * 250 / fps, "fps": fps,
          "peak_rss_mb": peak,
          "face_search_peak_rss_mb": 160.0, "seconds_by_stage": {"render": 250 / fps}}


def test_repeated_runs_report_the_run_of_median_speed_and_every_runs_speed():
  runs = [_run(30.0, 540.0), _run(25.0, 600.0), _run(40.0, 530.0)]
  reported = bench_generate._median_run(runs)
  assert reported["fps"] == 30.0 and reported["peak_rss_mb"] == 540.0
  assert reported["cpu_seconds"] == 1.6 * 250 / 30.0
  assert reported["seconds_by_stage"] == {"render": 250 / 30.0}
  assert reported["fps_runs"] == [30.0, 25.0, 40.0]
  # An even count: the lower middle run.
  assert bench_generate._median_run(runs[:2])["fps"] == 25.0


def test_fewer_than_one_run_is_refused(capsys):
  assert cli.main(["bench", "generate", "--repeats", "0"]) == 2
  assert "--repeats" in capsys.readouterr().err
