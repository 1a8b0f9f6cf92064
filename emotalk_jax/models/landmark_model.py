"""Stage 1: the geometry-aware landmark generator (a graph network over the face).

Speech, an emotion and one neutral face go in; the person's own 68 landmarks,
moved by the speech and the emotion, come out for every video frame.

Data flow (B examples, T frames; A, E, F, G as in `LandmarkNet`):

  audio   = AudioEncoder(mel [B, T, 16, 80])                      [B, T, A]
  emotion = EmotionEncoder(emotion [B, 9] or [B, T, 9])           [B, T, E]
  nodes, graph = GraphEncoder(neutral [B, 68, 2])                 [B, 68, F], [B, G]
  motion  = TemporalModule(concat(audio, emotion))                [B, T, A + E]
  displacement = GraphDecoder(motion, graph, nodes, neutral)      [B, T, 68, 2]
                 (+ a per-node readout of the speech, minus head motion with
                  `shape_only`, + the frozen mean-displacement prior, + with
                  `emotion_basis` the frozen emotion offset: intensity x weights . basis)
  landmarks = neutral + displacement                              [B, T, 68, 2]

Identity geometry is kept by construction: the network only predicts an offset
from the person's own neutral landmarks, so a face with wide-set eyes keeps them.

The temporal module runs over audio and emotion only: the graph embedding is
constant over a clip, so it joins at the decoder instead of being convolved
over time for nothing.
"""

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import jraph
import ml_collections

from emotalk_jax import emotions
from emotalk_jax.models import face_graph

NUM_EMOTION_CLASSES = emotions.NUM_EMOTIONS
EMOTION_VECTOR_SIZE = NUM_EMOTION_CLASSES + 1  # Class weights, then intensity.
SPEECH_INPUTS = ("mel", "whisper", "both")
SPEECH_FEATURES = 384  # Whisper tiny.en's width: `speech` features per frame.
MEL_WINDOW = 16  # audio.MEL_WINDOW (audio.py pulls in av/librosa, which the model does not need).
N_MELS = 80  # audio.N_MELS.

# Log-mel is natural log of power, floored at log(1e-5) = -11.5 (silence) and about +3 for loud
# speech. This fixed affine map puts that range near [-2, 2] so the first conv starts in a sane
# regime; it is deliberately not a per-window normalisation, which would erase loudness (a cue
# for how wide the mouth opens).
_MEL_CENTER = -4.0
_MEL_SCALE = 4.0


class GraphConv(nn.Module):
  """One GCN layer, H' = A_norm (H W) + b, over a batched face graph.

  A_norm is the symmetric-normalised adjacency of the graph's own edges
  (`face_graph.gcn_aggregate`), so self loops count only if the graph has them.

  Attributes:
    features: output features per node.
    dtype: computation dtype.
  """
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, graph: jraph.GraphsTuple) -> jraph.GraphsTuple:
    """graph.nodes [N, F_in] -> graph with nodes [N, features]."""
    # Transform first, then aggregate: cheaper when features < F_in, and equal either way.
    h = nn.Dense(self.features, use_bias=False, dtype=self.dtype, name="dense")(graph.nodes)
    h = face_graph.gcn_aggregate(graph._replace(nodes=h))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return graph._replace(nodes=h + bias.astype(h.dtype))


def _graph_conv_nodes(conv: GraphConv, nodes: jax.Array) -> jax.Array:
  """Applies a GraphConv to nodes [..., 68, F] of faces with any batch shape."""
  batch_shape = nodes.shape[:-2]
  graph = face_graph.batched_graph(nodes)
  return face_graph.unbatch_nodes(conv(graph), batch_shape)


class AudioEncoder(nn.Module):
  """Mel window per frame -> speech-content embedding.

  A 1-D conv stack over the 16 mel frames of each window (mel bins as channels),
  strided down to 4 time steps, then a Dense and LayerNorm.

  Attributes:
    features: the embedding size A.
    channels: conv widths; each conv after the first halves the time axis.
    dtype: computation dtype.
  """
  features: int = 128
  channels: Sequence[int] = (64, 128, 128)
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, mel: jax.Array) -> jax.Array:
    """mel [..., 16, 80] log-mel windows -> [..., features]."""
    batch_shape = mel.shape[:-2]
    x = mel.reshape((-1,) + mel.shape[-2:]).astype(self.dtype)
    x = (x - _MEL_CENTER) / _MEL_SCALE
    for i, width in enumerate(self.channels):
      x = nn.Conv(width, kernel_size=(3,), strides=(1 if i == 0 else 2,), padding="SAME",
                  dtype=self.dtype)(x)
      x = nn.gelu(x)
    x = x.reshape((x.shape[0], -1))
    x = nn.Dense(self.features, dtype=self.dtype)(x)
    x = nn.LayerNorm(dtype=self.dtype)(x)
    return x.reshape(batch_shape + (self.features,))


class SpeechFeatureEncoder(nn.Module):
  """A pretrained recogniser's feature per frame (Whisper's encoder,
  `models.whisper.speech_features`) ->
  speech-content embedding: LayerNorm, then a two-layer MLP and LayerNorm.

  Attributes:
    features: the embedding size A.
    hidden: the MLP's hidden width.
    dtype: computation dtype.
  """
  features: int = 128
  hidden: int = 256
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, speech: jax.Array) -> jax.Array:
    """speech [..., D] -> [..., features]."""
    x = nn.LayerNorm(dtype=self.dtype)(speech.astype(self.dtype))
    x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    x = nn.Dense(self.features, dtype=self.dtype)(x)
    return nn.LayerNorm(dtype=self.dtype)(x)


class EmotionEncoder(nn.Module):
  """Emotion vector (8 class weights + intensity) -> emotion embedding, a 2-layer MLP.

  Attributes:
    features: the embedding size E.
    dtype: computation dtype.
  """
  features: int = 64
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, emotion: jax.Array) -> jax.Array:
    """emotion [..., 9] -> [..., features]."""
    x = nn.Dense(self.features, dtype=self.dtype)(emotion.astype(self.dtype))
    x = nn.gelu(x)
    x = nn.Dense(self.features, dtype=self.dtype)(x)
    return nn.LayerNorm(dtype=self.dtype)(x)


class GraphEncoder(nn.Module):
  """Neutral landmarks as a graph -> node features and one graph embedding.

  Attributes:
    features: GraphConv widths (default 2 -> 32 -> 64 -> 64 per node).
    graph_dim: size G of the pooled graph embedding.
    dtype: computation dtype.
  """
  features: Sequence[int] = (32, 64, 64)
  graph_dim: int = 128
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, neutral: jax.Array):
    """neutral [B, 68, 2] -> (nodes [B, 68, features[-1]], embedding [B, graph_dim])."""
    h = neutral.astype(self.dtype)
    for i, width in enumerate(self.features):
      h = _graph_conv_nodes(GraphConv(width, dtype=self.dtype, name=f"conv_{i}"), h)
      h = nn.gelu(h)
    # Mean sees the overall shape, max the extremes (jaw width, brow height).
    pooled = jnp.concatenate([h.mean(axis=-2), h.max(axis=-2)], axis=-1)
    embedding = nn.Dense(self.graph_dim, dtype=self.dtype)(pooled)
    return h, nn.LayerNorm(dtype=self.dtype)(embedding)


class TemporalModule(nn.Module):
  """Mixes per-frame embeddings over time, so motion is smooth and co-articulated.

  `layers` residual blocks x + Conv1D(gelu(LayerNorm(x))), 'SAME' padding: each frame sees
  kernel // 2 frames either side, a finite reach, so generation can run in chunks with that much
  context (`generate.pipeline.LANDMARK_MARGIN`) and give the same result as one pass.

  Attributes:
    kernel: temporal kernel size of the conv blocks.
    layers: number of residual blocks.
    dtype: computation dtype.
  """
  kernel: int = 5
  layers: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [B, T, D] -> [B, T, D]."""
    width = x.shape[-1]
    for _ in range(self.layers):
      h = nn.LayerNorm(dtype=self.dtype)(x)
      h = nn.Conv(width, kernel_size=(self.kernel,), padding="SAME", dtype=self.dtype)(nn.gelu(h))
      x = x + h
    return x


class GraphDecoder(nn.Module):
  """Per-frame motion + identity -> 2-D displacement of every landmark.

  Each node of each frame starts from concat(motion[b, t], graph[b], nodes[b, k],
  neutral[b, k], node_embedding[k]) projected to `features[0]`. The projection is
  computed as the sum of one Dense per part (the same function as one Dense on
  the concatenation) so the [B, T, 68, ...] concatenation is never built. Then
  pre-norm residual GraphConv blocks and a Dense(2) per node.

  Attributes:
    features: GraphConv widths.
    output_scale: multiplies the output (LandmarkNet's displacement_scale).
    zero_init: start the output layer's kernel at zero (the decoder then starts by predicting no
      motion).
    dtype: computation dtype.
  """
  features: Sequence[int] = (64, 64)
  output_scale: float = 1.0
  zero_init: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, motion, graph_embedding, nodes, neutral):
    """Decodes displacements.

    Args:
      motion: [B, T, D] per-frame audio + emotion features.
      graph_embedding: [B, G].
      nodes: [B, 68, F] graph-encoder node features.
      neutral: [B, 68, 2] neutral landmarks.

    Returns:
      [B, T, 68, 2] displacement, output_scale * Dense(2)(h).
    """
    width = self.features[0]
    per_frame = jnp.concatenate([
        motion,
        jnp.broadcast_to(graph_embedding[:, None], motion.shape[:2] + graph_embedding.shape[-1:])
    ],
                                axis=-1).astype(self.dtype)
    per_node = jnp.concatenate([nodes, neutral.astype(nodes.dtype)], axis=-1).astype(self.dtype)
    # A learned per-node code tells the decoder which landmark it is (mouth vs jaw react
    # differently).
    node_embedding = self.param("node_embedding", nn.initializers.normal(0.02),
                                (face_graph.NUM_NODES, width))
    h = (nn.Dense(width, dtype=self.dtype, name="frame_proj")(per_frame)[:, :, None, :]
         + nn.Dense(width, use_bias=False, dtype=self.dtype, name="node_proj")(per_node)[:, None]
         + node_embedding.astype(self.dtype))  # [B, T, 68, width]
    for i, out in enumerate(self.features):
      y = nn.gelu(nn.LayerNorm(dtype=self.dtype)(h))
      y = _graph_conv_nodes(GraphConv(out, dtype=self.dtype, name=f"conv_{i}"), y)
      h = h + y if out == h.shape[-1] else y
    h = nn.gelu(nn.LayerNorm(dtype=self.dtype)(h))
    init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
    return ScaledDense(2, self.output_scale, dtype=self.dtype, kernel_init=init, name="out")(h)


class ScaledDense(nn.Module):
  """scale * Dense(x), with the scale folded into the weights: x @ (scale W) + scale b.

  Folding keeps the last operation an addition. A multiply after the bias add
  would let XLA contract it with the residual addition `neutral + displacement`
  into one FMA (rounded once, where the separately returned displacement was
  rounded twice), and `landmarks == neutral + displacement` would fail by an ulp.
  """
  features: int
  scale: float = 1.0
  dtype: jnp.dtype = jnp.float32
  kernel_init: Callable = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """x [..., F] -> [..., features]."""
    kernel = self.param("kernel", self.kernel_init, (x.shape[-1], self.features))
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    kernel = (kernel * self.scale).astype(self.dtype)
    bias = (bias * self.scale).astype(self.dtype)
    return jnp.dot(x.astype(self.dtype), kernel) + bias


class EmotionHead(nn.Module):
  """Time-pooled motion features -> logits over the 8 emotion classes."""
  hidden: int = 128
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, motion: jax.Array) -> jax.Array:
    """motion [B, T, D] -> logits [B, 8]."""
    x = motion.mean(axis=1)
    x = nn.gelu(nn.Dense(self.hidden, dtype=self.dtype)(x))
    return nn.Dense(NUM_EMOTION_CLASSES, dtype=self.dtype)(x)


class LandmarkNet(nn.Module):
  """Speech + emotion + neutral landmarks -> landmark sequence (stage 1).

  The emotion head classifies the emotion from the temporal module's output
  (audio and emotion features mixed over time) pooled over the clip: the
  features that drive the decoder. It is an auxiliary consistency loss, like an
  AC-GAN's auxiliary classifier: it keeps the emotion identifiable after the
  temporal fusion so the decoder is fed motion features that carry it. Since
  those features include the emotion embedding, the head can be satisfied
  through the emotion path; it does not force the audio embedding to encode
  emotion, on purpose: the paper wants that embedding emotion-invariant
  (content only), and an emotion target on audio alone would push the other way.

  Attributes:
    audio_dim: speech-content embedding size A.
    emotion_dim: emotion embedding size E; 0: the network does not see the emotion (it then acts
      only through `emotion_basis`, exactly linear in intensity and mixture weights).
    graph_features: graph-encoder GraphConv widths.
    graph_dim: pooled graph embedding size G.
    decoder_features: graph-decoder GraphConv widths.
    temporal_kernel: conv kernel over frames.
    temporal_layers: residual temporal blocks.
    emotion_head: also return `emotion_logits`.
    displacement_scale: multiplies the decoder's last layer (folded into its
      weights, see `ScaledDense`), so that at initialisation the predicted
      motion is small against the face (coordinates are in [-1, 1]).
    dropout_rate: dropout on the speech embedding and the temporal module's
      output while training (small datasets overfit within a few hundred steps).
    motion_readout: also map each frame's speech embedding straight to a
      displacement of every node (one linear layer, `motion_readout` params),
      added to the graph decoder's. The decoder sees a frame's motion only as
      one vector added to every node's features; the readout gives each node
      its own direct response to the speech. Speech only: the emotion is not
      fed to it (results with and without it: docs/results.md).
    zero_init_decoder: zero-initialise the graph decoder's output layer, so an untrained network
      predicts exactly the `mean_displacement` prior (the mean-motion baseline) and training starts
      from there.
    speech_input: what carries the speech: 'mel' (log-mel windows through `AudioEncoder`), 'whisper'
      (Whisper encoder features per frame through `SpeechFeatureEncoder`) or 'both' (the two
      embeddings concatenated and mixed by a Dense layer).
    shape_only: remove head motion (translation, rotation, scale of the whole face; see
      `remove_similarity`) from what the network adds to the prior, so it can only change the face's
      shape and head pose comes from the prior (measured effect: docs/results.md).
    emotion_basis: add intensity x (class weights . `emotion_basis`) to the displacement: a fixed
      [8, 68, 2] param holding each class's displacement at intensity 1, measured on the training
      speakers (`evaluate.emotion_geometry.estimate_basis`, set by the trainer). The emotion's
      geometry is then linear in intensity and in mixtures by construction, and adds to the speech's
      motion; the network learns the speaker- and speech-dependent rest.
    dtype: computation dtype (params stay float32; outputs are float32).
  """
  audio_dim: int = 128
  emotion_dim: int = 64
  graph_features: Sequence[int] = (32, 64, 64)
  graph_dim: int = 128
  decoder_features: Sequence[int] = (64, 64)
  temporal_kernel: int = 5
  temporal_layers: int = 2
  emotion_head: bool = True
  displacement_scale: float = 0.1
  dropout_rate: float = 0.0
  motion_readout: bool = True
  zero_init_decoder: bool = False
  shape_only: bool = False
  emotion_basis: bool = False
  speech_input: str = "mel"
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, mel, emotion, neutral_landmarks, train: bool = False, speech=None) -> dict:
    """Predicts landmarks for every frame.

    Args:
      mel: [B, T, 16, 80] log-mel window per video frame (None when `speech_input` is 'whisper').
      emotion: [B, 9] for the whole clip or [B, T, 9] per frame (8 class
        weights, mixtures allowed, then intensity).
      neutral_landmarks: [B, 68, 2] the person's neutral face, in [-1, 1].
      train: apply dropout (needs a 'dropout' rng); no other layer depends on it.
      speech: [B, T, D] Whisper encoder feature per video frame (needed unless `speech_input` is
        'mel').

    Returns:
      Dict with `landmarks` [B, T, 68, 2] = neutral + displacement,
      `displacement` [B, T, 68, 2] (the decoder's scaled output + the `mean_displacement` param, in
      landmark units; float32),
      and `emotion_logits` [B, 8] when `emotion_head`.
    """
    if self.speech_input not in SPEECH_INPUTS:
      raise ValueError(f"speech_input must be one of {SPEECH_INPUTS}, got {self.speech_input!r}")
    uses_mel, uses_features = self.speech_input in ("mel", "both"), self.speech_input in ("whisper",
                                                                                          "both")
    if uses_mel and (mel is None or mel.ndim != 4 or mel.shape[-2:] != (MEL_WINDOW, N_MELS)):
      raise ValueError(f"mel must be [B, T, {MEL_WINDOW}, {N_MELS}], got "
                       f"{None if mel is None else mel.shape}")
    if uses_features and (speech is None or speech.ndim != 3):
      raise ValueError(f"speech_input {self.speech_input!r} needs speech [B, T, D], got "
                       f"{None if speech is None else speech.shape}")
    if emotion.ndim not in (2, 3) or emotion.shape[-1] != EMOTION_VECTOR_SIZE:
      raise ValueError(
          f"emotion must be [B, {EMOTION_VECTOR_SIZE}] or [B, T, {EMOTION_VECTOR_SIZE}], "
          f"got {emotion.shape}")
    batch, frames = (mel if uses_mel else speech).shape[:2]
    # Explicit names: they are the params' top-level keys that checkpoints and surgery rely on
    # ("temporal" and "emotion_head" also name config fields, so they cannot be attributes).
    graph_encoder = GraphEncoder(tuple(self.graph_features), self.graph_dim, dtype=self.dtype,
                                 name="graph_encoder")
    temporal = TemporalModule(self.temporal_kernel, self.temporal_layers,
                              dtype=self.dtype, name="temporal")
    graph_decoder = GraphDecoder(tuple(self.decoder_features),
                                 self.displacement_scale,
                                 self.zero_init_decoder,
                                 dtype=self.dtype,
                                 name="graph_decoder")

    dropout = nn.Dropout(self.dropout_rate, deterministic=not train)
    embeddings = []
    if uses_mel:
      embeddings.append(AudioEncoder(self.audio_dim, dtype=self.dtype, name="audio_encoder")(mel))
    if uses_features:
      embeddings.append(
          SpeechFeatureEncoder(self.audio_dim, dtype=self.dtype, name="speech_encoder")(speech))
    audio = embeddings[0] if len(embeddings) == 1 else nn.Dense(
        # [B, T, A]
        self.audio_dim, dtype=self.dtype, name="speech_mix")(jnp.concatenate(embeddings, -1))
    if self.emotion_dim:
      emotion_embedding = EmotionEncoder(self.emotion_dim, dtype=self.dtype,
                                         name="emotion_encoder")(emotion)  # [B, E] or [B, T, E]
      if emotion_embedding.ndim == 2:
        emotion_embedding = emotion_embedding[:, None]
    else:  # The emotion reaches the face only through `emotion_basis`.
      emotion_embedding = jnp.zeros((batch, 1, 0), audio.dtype)
    emotion_embedding = jnp.broadcast_to(emotion_embedding, (batch, frames, self.emotion_dim))
    nodes, graph_embedding = graph_encoder(neutral_landmarks)
    # Recorded so tests and analysis can see which path a change went through.
    self.sow("intermediates", "audio", audio)
    self.sow("intermediates", "emotion", emotion_embedding)
    self.sow("intermediates", "graph", graph_embedding)

    speech = dropout(audio)
    motion = temporal(jnp.concatenate([speech, emotion_embedding.astype(audio.dtype)], axis=-1))
    motion = dropout(motion)
    # A fixed per-node offset the network predicts around: the training set's mean displacement
    # (set by the trainer, see train_landmark.mean_displacement; zeros until then).
    prior = self.param("mean_displacement", nn.initializers.zeros, (face_graph.NUM_NODES, 2),
                       jnp.float32)
    displacement = graph_decoder(motion, graph_embedding, nodes,
                                 neutral_landmarks).astype(jnp.float32)
    if self.motion_readout:
      # Zero at initialisation: a random readout would start every node several pixels off.
      readout = ScaledDense(face_graph.NUM_NODES * 2, self.displacement_scale, dtype=self.dtype,
                            kernel_init=nn.initializers.zeros, name="motion_readout")(speech)
      displacement = displacement + readout.reshape(batch, frames, face_graph.NUM_NODES, 2).astype(
          jnp.float32)
    if self.shape_only:
      displacement = remove_similarity(displacement, neutral_landmarks.astype(jnp.float32))
    displacement = displacement + prior
    if self.emotion_basis:
      basis = self.param("emotion_basis", nn.initializers.zeros,
                         (NUM_EMOTION_CLASSES, face_graph.NUM_NODES, 2), jnp.float32)
      displacement = displacement + emotion_offset(emotion, basis, frames)
    outputs = {
        "landmarks": neutral_landmarks.astype(jnp.float32)[:, None] + displacement,
        "displacement": displacement,
    }
    if self.emotion_head:
      logits = EmotionHead(dtype=self.dtype, name="emotion_head")(motion)
      outputs["emotion_logits"] = logits.astype(jnp.float32)
    return outputs


def emotion_offset(emotion: jax.Array, basis: jax.Array, frames: int) -> jax.Array:
  """intensity x (weights . basis): emotion [B, 9] or [B, T, 9], basis [8, 68, 2] -> [B, T, 68, 2]
  (float32; a clip-wide emotion is repeated over `frames`)."""
  emotion = emotion.astype(jnp.float32)
  offset = jnp.einsum("...c,cnd->...nd", emotion[..., :NUM_EMOTION_CLASSES], basis)
  offset = offset * emotion[..., NUM_EMOTION_CLASSES, None, None]
  if offset.ndim == 3:
    offset = jnp.broadcast_to(offset[:, None], (offset.shape[0], frames) + offset.shape[1:])
  return offset


def remove_similarity(displacement: jax.Array, neutral: jax.Array) -> jax.Array:
  """Removes the head motion from a displacement: its component along the similarity motions of the
  face.

  Translation, rotation and scaling of the neutral face move its landmarks, to first order, by the
  fields
  B = [e_x, e_y, x - c, perp(x - c)] ([68 * 2, 4], c the centroid). The displacement (per frame, a
  136-vector) is projected onto the orthogonal complement of their span: what is left changes the
  face's shape, and no combination of the network's outputs can move the head as a whole.

  Args:
    displacement: [B, T, 68, 2].
    neutral: [B, 68, 2] neutral landmarks.

  Returns:
    [B, T, 68, 2], orthogonal to every similarity motion of `neutral` (applying this again changes
    nothing).
  """
  centred = neutral - neutral.mean(axis=-2, keepdims=True)  # [B, 68, 2]
  ones, zeros = jnp.ones_like(centred[..., 0]), jnp.zeros_like(centred[..., 0])
  basis = jnp.stack([jnp.stack([ones, zeros], -1), jnp.stack([zeros, ones], -1), centred,
                     jnp.stack([-centred[..., 1], centred[..., 0]], -1)], axis=-1)  # [B, 68, 2, 4]
  q, _ = jnp.linalg.qr(basis.reshape(basis.shape[0], -1, 4))  # [B, 136, 4] orthonormal columns.
  flat = displacement.reshape(displacement.shape[:2] + (-1,))  # [B, T, 136]
  flat = flat - jnp.einsum("btn,bnk,bmk->btm", flat, q, q)
  return flat.reshape(displacement.shape)


def dummy_inputs(batch_size: int = 1, num_frames: int = 4):
  """Zero mel, a neutral emotion and the schematic face, shaped for `LandmarkNet`."""
  mel = jnp.zeros((batch_size, num_frames, MEL_WINDOW, N_MELS), jnp.float32)
  neutral_class = emotions.EMOTIONS.index("neutral")
  emotion = jnp.zeros((batch_size, EMOTION_VECTOR_SIZE), jnp.float32).at[:, neutral_class].set(1.0)
  neutral = jnp.broadcast_to(jnp.asarray(face_graph.schematic_face()),
                             (batch_size, face_graph.NUM_NODES, 2))
  return mel, emotion, neutral


def init_params(model: LandmarkNet, rng, batch_size: int = 1, num_frames: int = 4):
  """Initialises `model` from dummy inputs; returns the params pytree (no 'params' wrapper).

  Params do not depend on B or T, so the small defaults suit any later batch.
  """
  # Jitted: eager init dispatches hundreds of small ops and is several times slower on CPU.
  speech = jnp.zeros((batch_size, num_frames, SPEECH_FEATURES), jnp.float32)
  variables = jax.jit(model.init)(rng, *dummy_inputs(batch_size, num_frames), speech=speech)
  return variables["params"]


def apply(model: LandmarkNet, params, inputs, train: bool = False, rngs=None) -> dict:
  """`model` on a dict of inputs: 'emotion', 'neutral_landmarks' and the speech its `speech_input`
  reads,
  'mel' and/or 'speech' (other keys are ignored): a batch of the input pipeline, or generation's
    chunks."""
  uses_mel = model.speech_input in ("mel", "both")
  return model.apply({"params": params}, inputs["mel"] if uses_mel else None, inputs["emotion"],
                     inputs["neutral_landmarks"], train=train, rngs=rngs,
                     speech=None if model.speech_input == "mel" else inputs["speech"])


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}


def config_dtype(dtype):
  """A config's dtype (a name such as 'bfloat16', or a dtype) as a JAX dtype."""
  return DTYPES[dtype] if isinstance(dtype, str) else dtype


def create_model(config: ml_collections.ConfigDict) -> LandmarkNet:
  """The LandmarkNet that `config.model` describes (a stage-1 config: configs/landmark*.py)."""
  kwargs = dict(config.model.to_dict()) if isinstance(
      config.model, ml_collections.ConfigDict) else dict(config.model)
  for key in ("graph_features", "decoder_features"):
    if key in kwargs:
      kwargs[key] = tuple(kwargs[key])
  if "dtype" in kwargs:
    kwargs["dtype"] = config_dtype(kwargs["dtype"])
  # Configs written before the GRU option was removed name the (conv) temporal module they used.
  if kwargs.pop("temporal", "conv") != "conv":
    raise ValueError(
        "model.temporal: only the conv temporal module exists (a GRU's state would not carry "
        "across generation's chunks)")
  return LandmarkNet(**kwargs)


def param_shapes(config: ml_collections.ConfigDict) -> dict:
  """The model's params as ShapeDtypeStructs (nothing is computed): what a checkpoint must match."""
  return jax.eval_shape(lambda: init_params(create_model(config), jax.random.PRNGKey(0),
                                            num_frames=config.window))
