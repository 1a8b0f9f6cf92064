"""The tf.data input pipeline on a small real TFDS dataset made from the bundled GRID clip.

The dataset (conftest's `pipeline_dataset`, built once per session): pseudo-clips cut from the
preprocessed GRID clip (64x64), with different lengths, labels and speakers, one without audio and
one shorter than the window, plus a synthetic clip whose frames, landmarks and mel encode the frame
index.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from data_pipelines import features
from data_pipelines import input_pipeline as ip
from emotalk_jax import emotions
from emotalk_jax.media import audio

import tensorflow as tf  # pylint: disable=g-bad-import-order
import clip_datasets  # tests/ is on sys.path under pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZE = clip_datasets.SIZE
K = 8
INDEX_CLIP, INDEX_LEN = clip_datasets.INDEX_CLIP, clip_datasets.INDEX_LEN
SHORT = clip_datasets.SHORT


def _take(it, n):
  return [next(it) for _ in range(n)]


def _assert_batches_equal(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    assert x.keys() == y.keys()
    for key in x:
      np.testing.assert_array_equal(x[key], y[key], err_msg=key)


def _ids(batches):
  return [(c.decode(), int(s)) for b in batches for c, s in zip(b["clip_id"], b["start"])]


def test_tensorflow_sees_no_gpu():
  assert tf.config.get_visible_devices("GPU") == []


def test_batch_shapes_and_dtypes(pipeline_dataset):
  builder, sources = pipeline_dataset
  batch = next(
      iter(ip.make_dataset(builder, "train", batch_size=4, window=K, seed=0).as_numpy_iterator()))
  expected = {
      "frames": ((4, K, SIZE, SIZE, 3), np.uint8),
      "landmarks": ((4, K, 68, 2), np.float32),
      "mel": ((4, K, audio.MEL_WINDOW, audio.N_MELS), np.float32),
      "detected": ((4, K), np.bool_),
      "frame_mask": ((4, K), np.bool_),
      "neutral_frame": ((4, SIZE, SIZE, 3), np.uint8),
      "neutral_landmarks": ((4, 68, 2), np.float32),
      "neutral_source": ((4,), np.int32),
      "emotion": ((4, emotions.NUM_EMOTIONS + 1), np.float32),
      "emotion_index": ((4,), np.int32),
      "intensity": ((4,), np.float32),
      "emotion_exact": ((4,), np.bool_),
      "has_audio": ((4,), np.bool_),
      "speaker_id": ((4,), np.int32),
      "start": ((4,), np.int32),
      "num_frames": ((4,), np.int32),
      "clip_id": ((4,), object),
      "speaker": ((4,), object),
      "epoch": ((4,), np.int64),
      "position": ((4,), np.int64),
  }
  assert set(batch) == set(expected)
  for key, (shape, dtype) in expected.items():
    assert batch[key].shape == shape and batch[key].dtype == dtype, key
  assert batch["frame_mask"].all()
  for i, clip_id in enumerate(batch["clip_id"]):
    src = sources[clip_id.decode()]
    want = emotions.Emotion.of(src["emotion"], src["intensity"]).vector()
    np.testing.assert_allclose(batch["emotion"][i], want, rtol=1e-6)
    assert emotions.EMOTIONS[batch["emotion_index"][i]] == src["emotion"]
    assert batch["has_audio"][i] == src["has_audio"]
    assert batch["emotion_exact"][i] == src["emotion_exact"]
    assert batch["num_frames"][i] == len(src["landmarks"])
    assert batch["neutral_source"][i] == features.NEUTRAL_SOURCES.index("first_frame")
    np.testing.assert_array_equal(batch["neutral_landmarks"][i], src["neutral_landmarks"])
    assert np.abs(batch["neutral_frame"][i].astype(int) - src["neutral_frame"]).mean() < 6  # JPEG
  # Speaker ids: one per speaker text, equal across clips of the same speaker.
  speaker_ids = {}
  for s, sid in zip(batch["speaker"], batch["speaker_id"]):
    assert speaker_ids.setdefault(s, sid) == sid


def test_windows_align_with_source_clips(pipeline_dataset):
  builder, sources = pipeline_dataset
  it = ip.InputIterator(builder, "train", batch_size=7, window=K, seed=3)
  seen = set()
  for batch in _take(it, 3):
    for i, clip_id in enumerate(batch["clip_id"]):
      clip_id = clip_id.decode()
      seen.add(clip_id)
      src, start = sources[clip_id], int(batch["start"][i])
      assert 0 <= start <= len(src["landmarks"]) - K
      window = slice(start, start + K)
      np.testing.assert_array_equal(batch["landmarks"][i], src["landmarks"][window])
      np.testing.assert_array_equal(batch["mel"][i], src["mel"][window])
      np.testing.assert_array_equal(batch["detected"][i], src["detected"][window])
      frame_err = np.abs(batch["frames"][i].astype(int) - src["frames"][window]).mean(axis=(1, 2,
                                                                                            3))
      assert frame_err.max() < 6, (clip_id, frame_err)  # JPEG; a neighbouring frame differs by more
      if clip_id == INDEX_CLIP:
        t = start + np.arange(K)
        np.testing.assert_array_equal(batch["landmarks"][i][:, 0, 0], t)
        np.testing.assert_array_equal(batch["mel"][i][:, 0, 0], t)
        np.testing.assert_allclose(batch["frames"][i].mean(axis=(1, 2, 3)), 5 * t, atol=2)
  assert seen == set(sources) - SHORT


def test_short_clips_dropped_counted_or_padded(pipeline_dataset):
  builder, sources = pipeline_dataset
  stats = ip.clip_length_stats(builder, "train", window=K)
  assert stats["num_clips"] == len(sources) and stats["num_short"] == len(SHORT)
  assert stats["min_frames"] == 6 and stats["max_frames"] == 50
  dropped = _take(ip.InputIterator(builder, "train", batch_size=7, window=K, seed=0), 2)
  assert not SHORT & {c for c, _ in _ids(dropped)}
  # Padded: the short clip comes with a mask, its last frame repeated in the padding.
  padded = next(
      ip.InputIterator(builder, "train", batch_size=8, window=K, seed=0, short_clips="pad"))
  assert sorted(c.decode() for c in padded["clip_id"]) == sorted(sources)
  i = [c.decode() for c in padded["clip_id"]].index("c3_short")
  np.testing.assert_array_equal(padded["frame_mask"][i], np.arange(K) < 6)
  assert not padded["detected"][i][6:].any()
  np.testing.assert_array_equal(padded["landmarks"][i][6:],
                                np.repeat(sources["c3_short"]["landmarks"][-1:], 2, 0))
  assert padded["start"][i] == 0


def test_same_seed_same_batches_and_epochs_are_permutations(pipeline_dataset):
  builder, sources = pipeline_dataset
  a = _take(ip.InputIterator(builder, "train", batch_size=7, window=K, seed=11), 3)
  b = _take(ip.InputIterator(builder, "train", batch_size=7, window=K, seed=11), 3)
  _assert_batches_equal(a, b)
  c = _take(ip.InputIterator(builder, "train", batch_size=7, window=K, seed=12), 3)
  assert _ids(a) != _ids(c)
  usable = sorted(set(sources) - SHORT)
  # 7 usable clips: one batch = one epoch.
  epochs = [[clip for clip, _ in _ids([batch])] for batch in a]
  for epoch in epochs:
    assert sorted(epoch) == usable
  assert len({tuple(e) for e in epochs}) > 1  # reshuffled each epoch
  # Unshuffled: the split's order, the same every epoch, windows still drawn per epoch.
  d = _take(ip.InputIterator(builder, "train", batch_size=7, window=K, seed=11, shuffle=False), 2)
  assert [c for c, _ in _ids(d[:1])] == [c for c, _ in _ids(d[1:])]


def test_resume_is_exact(pipeline_dataset):
  builder, _ = pipeline_dataset
  it = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=5)
  _take(it, 3)  # 12 windows: past the first epoch of 7.
  state = json.loads(json.dumps(it.get_state()))
  assert state["positions"] == {"0": {"epoch": 1, "position": 5}}
  expected = _take(it, 3)
  fresh = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=5)
  fresh.set_state(state)
  _assert_batches_equal(_take(fresh, 3), expected)
  # The state counts examples, not batches: another batch size continues the same stream.
  other = ip.InputIterator(builder, "train", batch_size=2, window=K, seed=5, state=state)
  assert _ids(_take(other, 6)) == _ids(expected)


def test_state_saved_with_orbax_next_to_the_train_state(pipeline_dataset, tmp_path):
  """The recipe of InputIterator's docstring."""
  ocp = pytest.importorskip("orbax.checkpoint")
  builder, _ = pipeline_dataset
  it = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=1)
  _take(it, 2)
  train_state = {"w": np.arange(3, dtype=np.float32)}
  with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
    mngr.save(2, args=ocp.args.Composite(state=ocp.args.StandardSave(train_state),
                                         data=ocp.args.JsonSave(it.get_state())))
    mngr.wait_until_finished()
    expected = _take(it, 2)
    restored = mngr.restore(2, args=ocp.args.Composite(state=ocp.args.StandardRestore(train_state),
                                                       data=ocp.args.JsonRestore()))
  np.testing.assert_array_equal(restored["state"]["w"], train_state["w"])  # Saved side by side.
  fresh = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=1)
  fresh.set_state(restored["data"])
  _assert_batches_equal(_take(fresh, 2), expected)


def test_state_from_other_settings_is_rejected(pipeline_dataset):
  builder, _ = pipeline_dataset
  state = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=5).get_state()
  with pytest.raises(ValueError, match="seed"):
    ip.InputIterator(builder, "train", batch_size=4, window=K, seed=6, state=state)
  with pytest.raises(ValueError, match="window"):
    ip.InputIterator(builder, "train", batch_size=4, window=K + 1, seed=5, state=state)
  with pytest.raises(ValueError, match="not an input pipeline state"):
    ip.InputIterator(builder, "train", batch_size=4, window=K, seed=5, state={"step": 3})


def test_process_split_is_disjoint_and_complete(pipeline_dataset):
  builder, sources = pipeline_dataset
  halves = []
  for index in range(2):
    ds = ip.make_dataset(builder,
                         "train",
                         batch_size=2,
                         window=K,
                         seed=0,
                         shuffle=False,
                         repeat=False,
                         process_index=index,
                         process_count=2)
    batches = list(ds.as_numpy_iterator())
    assert all(len(b["clip_id"]) == 1 for b in batches)  # batch_size // process_count
    halves.append({c for c, _ in _ids(batches)})
  assert not halves[0] & halves[1]
  assert halves[0] | halves[1] == set(sources) - SHORT
  # Each process's iterator state holds its own position.
  it = ip.InputIterator(builder,
                        "train",
                        batch_size=2,
                        window=K,
                        seed=0,
                        process_index=1,
                        process_count=2)
  next(it)
  assert set(it.get_state()["positions"]) == {"1"}


def test_bad_arguments(pipeline_dataset):
  builder, _ = pipeline_dataset
  with pytest.raises(ValueError, match="not divisible by the 2 processes"):
    ip.make_dataset(builder,
                    "train",
                    batch_size=3,
                    window=K,
                    seed=0,
                    process_index=0,
                    process_count=2)
  with pytest.raises(ValueError, match="window"):
    ip.make_dataset(builder, "train", batch_size=4, window=0, seed=0)
  with pytest.raises(ValueError, match="short_clips"):
    ip.make_dataset(builder, "train", batch_size=4, window=K, seed=0, short_clips="crop")
  with pytest.raises(ValueError, match="no clip of at least 100 frames"):
    ip.make_dataset(builder, "train", batch_size=4, window=100, seed=0)


def test_project_builders_resolve_by_name(tmp_path):
  pytest.importorskip("data_pipelines.mead")
  builder = ip.get_builder("mead", data_dir=str(tmp_path))
  assert builder.name == "mead"
  ip._check_features(builder)  # pylint: disable=protected-access


def test_global_batch_on_one_device(pipeline_dataset):
  builder, _ = pipeline_dataset
  mesh = ip.make_mesh()
  batch = next(ip.InputIterator(builder, "train", batch_size=4, window=K, seed=0, mesh=mesh))
  assert "clip_id" not in batch and "epoch" not in batch
  assert batch["frames"].shape == (4, K, SIZE, SIZE, 3) and str(batch["frames"].dtype) == "uint8"
  assert batch["mel"].sharding.spec == ip.P("data")


_EIGHT_DEVICES = textwrap.dedent("""
    import json, sys
    import jax
    from data_pipelines import input_pipeline as ip
    path, window = sys.argv[1], int(sys.argv[2])
    mesh = ip.make_mesh()
    it = ip.InputIterator(path, "train", batch_size=8, window=window, seed=5, mesh=mesh)
    batch = next(it)
    out = {"devices": jax.device_count(), "state": it.get_state()}
    out["shapes"] = {k: list(v.shape) for k, v in batch.items()}
    out["shard_shapes"] = {k: sorted({tuple(s.data.shape) for s in v.addressable_shards})
                           for k, v in batch.items()}
    out["num_shards"] = len(batch["frames"].addressable_shards)
    out["shard_devices"] = len({s.device for s in batch["frames"].addressable_shards})
    out["spec"] = str(batch["frames"].sharding.spec)
    local = next(ip.InputIterator(path, "train", batch_size=8, window=window, seed=5))
    out["ids"] = [[c.decode(), int(s)] for c, s in zip(local["clip_id"], local["start"])]
    for attempt in ("iterator", "to_global_batch"):
      try:
        if attempt == "iterator":
          ip.InputIterator(path, "train", batch_size=4, window=window, seed=5, mesh=mesh)
        else:
          ip.to_global_batch({"x": local["mel"][:4]}, mesh)
        out[attempt] = "no error"
      except ValueError as e:
        out[attempt] = str(e)
    print("RESULT" + json.dumps(out))
""")


@pytest.mark.slow
def test_global_batch_sharded_over_eight_simulated_devices(pipeline_dataset):
  builder, _ = pipeline_dataset
  devices = "--xla_force_host_platform_device_count=8"
  env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} {devices}", JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
  proc = subprocess.run([sys.executable, "-c", _EIGHT_DEVICES, builder.data_dir, str(K)], env=env,
                        capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  out = json.loads(proc.stdout.split("RESULT", 1)[1])
  assert out["devices"] == 8
  assert out["shapes"]["frames"] == [8, K, SIZE, SIZE, 3]
  assert out["shard_shapes"]["frames"] == [[1, K, SIZE, SIZE, 3]]
  assert out["shard_shapes"]["mel"] == [[1, K, audio.MEL_WINDOW, audio.N_MELS]]
  assert out["shard_shapes"]["emotion"] == [[1, emotions.NUM_EMOTIONS + 1]]
  assert out["num_shards"] == 8 and out["shard_devices"] == 8
  assert "data" in out["spec"]
  assert "not divisible by the 8 devices" in out["iterator"]
  assert "not divisible by the 8 devices" in out["to_global_batch"]
  # Same seed in another process (and another device count): the same batch.
  here = next(ip.InputIterator(builder, "train", batch_size=8, window=K, seed=5))
  assert [list(x) for x in _ids([here])] == out["ids"]
  assert out["state"] == ip.InputIterator(builder, "train", batch_size=8, window=K, seed=5,
                                          state=out["state"]).get_state()


_TWO_PROCESSES = textwrap.dedent("""
    import json, sys
    import jax
    process_id, port, path, window = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2,
                               process_id=process_id)
    from jax.experimental import multihost_utils
    from data_pipelines import input_pipeline as ip
    mesh = ip.make_mesh()
    def starts(batch):  # The global batch's window starts, gathered to every process.
      return [int(x) for x in multihost_utils.process_allgather(batch["start"], tiled=True)]
    it = ip.InputIterator(path, "train", batch_size=8, window=window, seed=5, mesh=mesh)
    first, second = next(it), next(it)
    state = it.get_state()  # A collective: gathers both processes' positions.
    expected = starts(next(it))
    resumed = ip.InputIterator(path, "train", batch_size=8, window=window, seed=5, mesh=mesh,
                               state=json.loads(json.dumps(state)))
    out = {"process": jax.process_index(), "devices": jax.device_count(),
           "local_devices": jax.local_device_count(),
           "shape": list(second["frames"].shape),
           "local_shards": sorted({tuple(s.data.shape) for s in
           second["frames"].addressable_shards}), "state": state, "expected": expected, "resumed":
           starts(next(resumed))}
    print("RESULT" + json.dumps(out))
""")


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_of_four_devices(pipeline_dataset):
  """Real multi-process JAX on CPU (gloo): per-process splits -> one global batch over 8 devices,
  one state for both processes, exact resumption on each."""
  builder, _ = pipeline_dataset
  devices = "--xla_force_host_platform_device_count=4"
  env = dict(os.environ, XLA_FLAGS=f"{os.environ['XLA_FLAGS']} {devices}", JAX_PLATFORMS="cpu",
             PYTHONPATH=os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]))
  port = str(_free_port())
  procs = [
      subprocess.Popen(
          [sys.executable, "-c", _TWO_PROCESSES,
           str(i), port, builder.data_dir,
           str(K)],
          env=env,
          stdout=subprocess.PIPE,
          stderr=subprocess.PIPE,
          text=True) for i in range(2)
  ]
  outs = []
  for proc in procs:
    try:
      stdout, stderr = proc.communicate(timeout=240)
    except subprocess.TimeoutExpired:
      for p in procs:
        p.kill()
      raise
    assert proc.returncode == 0, stderr[-3000:]
    outs.append(json.loads(stdout.split("RESULT", 1)[1]))
  assert [o["process"] for o in outs] == [0, 1]
  for out in outs:
    assert out["devices"] == 8 and out["local_devices"] == 4
    assert out["shape"] == [8, K, SIZE, SIZE, 3]
    assert out["local_shards"] == [[1, K, SIZE, SIZE, 3]]
    assert set(out["state"]["positions"]) == {"0", "1"}
    assert out["resumed"] == out["expected"]
  assert outs[0]["state"] == outs[1]["state"]


# Speech features and speaker balance ----------------------------------------------------------


def _speaker_counts(batches) -> dict:
  counts = {}
  for b in batches:
    for s in b["speaker"]:
      counts[s.decode()] = counts.get(s.decode(), 0) + 1
  return counts


def test_speech_feature_is_read_when_present(pipeline_dataset, tmp_path):
  _, sources = pipeline_dataset
  rng = np.random.default_rng(0)
  with_speech = {}
  for clip_id, src in sources.items():
    t = len(src["landmarks"])
    speech = rng.normal(size=(t, features.SPEECH_DIM)).astype(np.float16)
    if not src["has_audio"]:
      speech[:] = 0
    with_speech[clip_id] = {**src, "speech": speech}
  builder = clip_datasets.build({"train": with_speech}, tmp_path, SIZE, speech=True)
  it = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=3, repeat=False)
  batches = list(it)
  assert batches
  for b in batches:
    assert b["speech"].shape == (4, K, features.SPEECH_DIM) and b["speech"].dtype == np.float32
    for clip_id, start, speech, has_audio in zip(b["clip_id"], b["start"], b["speech"],
                                                 b["has_audio"]):
      src = with_speech[clip_id.decode()]["speech"]
      np.testing.assert_array_equal(speech, src[start:start + K].astype(np.float32))
      assert has_audio or not speech.any()
  # A dataset without the feature gives no `speech` key.
  assert "speech" not in next(ip.InputIterator(pipeline_dataset[0], "train", batch_size=4, window=K,
                                               seed=3))


def test_balanced_counts_give_every_speaker_the_same_share():
  speakers = [b"a"] * 10 + [None] + [b"b"] * 3 + [b"c"]
  counts = ip.balanced_counts(speakers, seed=0, epoch=0)
  assert counts[10] == 0
  per = {s: int(counts[[i for i, x in enumerate(speakers) if x == s]].sum())
         for s in (b"a", b"b", b"c")}
  assert per == {b"a": 5, b"b": 5, b"c": 5}  # ceil(14 clips / 3 speakers) each.
  assert counts[:10].max() - counts[:10].min() <= 1 and counts[14] == 5
  np.testing.assert_array_equal(counts, ip.balanced_counts(speakers, seed=0, epoch=0))
  other = [ip.balanced_counts(speakers, seed=0, epoch=e)[:10] for e in range(1, 6)]
  assert any((o != counts[:10]).any() for o in other)  # Which clips of 'a' get more changes.


def test_speaker_balance_proportions_determinism_and_resume(pipeline_dataset):
  builder, _ = pipeline_dataset
  # K = 8: c3_short is dropped, so the clips per speaker are s1: 3, s2: 2, s3: 1, s9: 1.
  plain = _speaker_counts(_take(ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2),
                                20))
  assert plain["grid/s1"] / 80 == pytest.approx(3 / 7, abs=0.05)  # Not balanced: 3 of 7 clips.
  it = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2, balance_speakers=True)
  batches = _take(it, 50)
  counts = _speaker_counts(batches)
  assert set(counts) == {"grid/s1", "grid/s2", "grid/s3", "synthetic/s9"}
  for speaker, n in counts.items():
    assert n / 200 == pytest.approx(1 / 4, abs=0.05), (speaker, counts)
  # Windows of one clip differ (each repeat draws its own start).
  starts = {int(s) for b in batches for c, s in zip(b["clip_id"], b["start"])
            if c == b"c5_surprised"}
  assert len(starts) > 5
  again = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2, balance_speakers=True)
  _assert_batches_equal(_take(again, 10), batches[:10])
  # Resume: exact, with the setting recorded in the state.
  state = json.loads(json.dumps(again.get_state()))
  assert state["balance_speakers"] is True
  fresh = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2, balance_speakers=True,
                           state=state)
  _assert_batches_equal(_take(fresh, 5), batches[10:15])
  with pytest.raises(ValueError, match="balance_speakers"):
    ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2, state=state)
  # A state saved before the setting existed resumes an unbalanced pipeline.
  old = ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2).get_state()
  del old["balance_speakers"]
  ip.InputIterator(builder, "train", batch_size=4, window=K, seed=2, state=old)
