"""The 68-node face graph over iBUG-300W landmarks, and its batched jraph form.

Node k is landmark k of the 68-point iBUG-300W markup (as produced by dlib and
face-alignment). Part names follow the iBUG convention of naming sides from the
*subject's* point of view: the "right" eye (36-41) is the subject's right eye,
which lies on the left of a frontal image (smaller x).

Edges run along each part's contour (closed parts are loops), plus one edge of
our own, nose-bridge tip (30) to the middle nostril point (33), so that the nose
is one connected part. Parts stay disconnected from each other unless
Delaunay edges from a template face are added (see `delaunay_edges`); the
parts-only graph has `NUM_PART_COMPONENTS` = 8 connected components (jaw, two
brows, nose, two eyes, outer lip, inner lip).

A batch of faces with any leading shape ([B], [B, T], ...) becomes a single
`jraph.GraphsTuple` with 68 nodes per face, built with static shapes so that it
can be traced under `jax.jit`.
"""

import collections
import math
from typing import Tuple

import jax
import jax.numpy as jnp
import jraph
import numpy as np

NUM_NODES = 68

# name -> (start, stop, closed): nodes start..stop-1 are chained in order; a
# closed part also links stop-1 back to start. Sides are the subject's.
PARTS = collections.OrderedDict([
    ("jaw", (0, 17, False)),
    ("right_brow", (17, 22, False)),
    ("left_brow", (22, 27, False)),
    ("nose_bridge", (27, 31, False)),
    ("nostrils", (31, 36, False)),
    ("right_eye", (36, 42, True)),
    ("left_eye", (42, 48, True)),
    ("outer_lip", (48, 60, True)),
    ("inner_lip", (60, 68, True)),
])

# Our addition, not part of the iBUG contours: joins the nose bridge to the
# nostrils so the nose is one component. Drawn with the nose bridge's part.
EXTRA_EDGES = ((30, 33),)

# Both lips (20 nodes), the region driven most by speech.
MOUTH = np.arange(48, 68)
# The inner-lip pairs whose mean gap is the mouth opening (`mouth_opening`).
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))

# Connected components of the graph made of `part_edges()` alone.
NUM_PART_COMPONENTS = 8


def part_index() -> np.ndarray:
  """[68] int32: index into `PARTS` of the part each node belongs to."""
  index = np.zeros(NUM_NODES, np.int32)
  for p, (start, stop, _) in enumerate(PARTS.values()):
    index[start:stop] = p
  return index


def part_edge_groups() -> "collections.OrderedDict[str, np.ndarray]":
  """Part name -> [E_p, 2] int32 edges (i < j) along that part, in `PARTS` order.

  Each `EXTRA_EDGES` edge is filed under the part of its first node, so the
  groups together hold exactly the edges of `part_edges()`.
  """
  groups = collections.OrderedDict()
  for name, (start, stop, closed) in PARTS.items():
    pairs = [(k, k + 1) for k in range(start, stop - 1)]
    if closed:
      pairs.append((start, stop - 1))
    groups[name] = pairs
  names = list(PARTS)
  index = part_index()
  for i, j in EXTRA_EDGES:
    groups[names[index[i]]].append((min(i, j), max(i, j)))
  return collections.OrderedDict(
      (name, np.asarray(pairs, np.int32).reshape(-1, 2)) for name, pairs in groups.items())


def part_edges() -> np.ndarray:
  """[E, 2] int32 undirected edges (i < j) along the face parts (E = 64)."""
  return np.concatenate(list(part_edge_groups().values()), axis=0)


def delaunay_edges(template) -> np.ndarray:
  """Inter-part edges of the Delaunay triangulation of a template face.

  Only edges joining two different parts are kept: within a part the contour
  already links the nodes, and Delaunay chords inside a part (say across the
  concave jaw) would only add shortcuts. Since the triangulation is connected
  and each part is connected by its contour, the union with `part_edges()` is
  one connected graph.

  Args:
    template: [68, 2] (x, y) landmarks of a mean or neutral frontal face, in any
      units (pixels or normalised).

  Returns:
    [E_d, 2] int32 undirected edges (i < j), sorted.
  """
  template = np.asarray(template, np.float64)
  if template.shape != (NUM_NODES, 2):
    raise ValueError(f"template must be [{NUM_NODES}, 2], got {template.shape}")
  # Imported here: scipy.spatial takes 0.2 s to import, and generation never triangulates.
  import scipy.spatial  # pylint: disable=g-import-not-at-top
  triangles = scipy.spatial.Delaunay(template).simplices  # [T, 3]
  pairs = np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [0, 2]]])
  pairs = np.unique(np.sort(pairs, axis=1), axis=0)
  index = part_index()
  pairs = pairs[index[pairs[:, 0]] != index[pairs[:, 1]]]
  # The connector edges are already in the part graph.
  extra = {(min(i, j), max(i, j)) for i, j in EXTRA_EDGES}
  keep = [tuple(p) not in extra for p in pairs.tolist()]
  return pairs[np.asarray(keep, bool)].astype(np.int32).reshape(-1, 2)


def edges(include_delaunay: bool = False, template=None) -> np.ndarray:
  """[E, 2] int32 undirected edges (i < j): part edges, optionally plus Delaunay ones.

  Args:
    include_delaunay: add `delaunay_edges(template)` to make the graph connected.
    template: [68, 2] face for the triangulation; required with include_delaunay.
  """
  result = part_edges()
  if include_delaunay:
    if template is None:
      raise ValueError("include_delaunay=True needs a [68, 2] template face")
    result = np.concatenate([result, delaunay_edges(template)])
    result = np.unique(result, axis=0).astype(np.int32)
  return result


def senders_receivers(edges=None, self_loops: bool = True) -> Tuple[np.ndarray, np.ndarray]:
  """Directed (senders, receivers) for one face: each edge both ways, then self loops.

  Args:
    edges: [E, 2] undirected edges (default `part_edges()`).
    self_loops: append k -> k for all 68 nodes (as in a GCN's A + I).

  Returns:
    Two [2E (+ 68)] int32 arrays.
  """
  e = part_edges() if edges is None else np.asarray(edges, np.int32).reshape(-1, 2)
  senders = [e[:, 0], e[:, 1]]
  receivers = [e[:, 1], e[:, 0]]
  if self_loops:
    loops = np.arange(NUM_NODES, dtype=np.int32)
    senders.append(loops)
    receivers.append(loops)
  return np.concatenate(senders).astype(np.int32), np.concatenate(receivers).astype(np.int32)


def dense_adjacency(edges=None, self_loops: bool = True) -> np.ndarray:
  """[68, 68] float32 symmetric 0/1 adjacency (with ones on the diagonal if self_loops)."""
  senders, receivers = senders_receivers(edges, self_loops)
  adjacency = np.zeros((NUM_NODES, NUM_NODES), np.float32)
  adjacency[receivers, senders] = 1.0
  return adjacency


def normalized_adjacency(edges=None, self_loops: bool = True) -> np.ndarray:
  """[68, 68] float32 D^-1/2 A D^-1/2, the GCN propagation matrix (Kipf & Welling)."""
  adjacency = dense_adjacency(edges, self_loops)
  inv_sqrt_degree = 1.0 / np.sqrt(np.maximum(adjacency.sum(axis=1), 1.0))
  return (inv_sqrt_degree[:, None] * adjacency * inv_sqrt_degree[None, :]).astype(np.float32)


def batched_graph(nodes, edges=None, self_loops: bool = True, globals_=None) -> jraph.GraphsTuple:
  """Packs faces with any leading batch shape into one `jraph.GraphsTuple`.

  The result equals `jraph.batch` of the individual faces' graphs, taken in
  row-major order over the batch dims, but is built from static shapes
  (offsets from `arange`), so it traces under `jax.jit`.

  Args:
    nodes: [..., 68, F] node features; the leading shape `batch_shape` is
      flattened into G = prod(batch_shape) graphs.
    edges: [E, 2] undirected edges of one face (default `part_edges()`);
      a static numpy array, shared by every face.
    self_loops: include k -> k edges.
    globals_: None, or [..., F_g] per-face features with the same batch shape.

  Returns:
    GraphsTuple with nodes [G * 68, F], senders / receivers [G * E'] offset by
    68 * g, n_node [G] = 68, n_edge [G] = E' (E' = 2E (+ 68)), edges None and
    globals [G, F_g] or None.
  """
  nodes = jnp.asarray(nodes)
  if nodes.ndim < 2 or nodes.shape[-2] != NUM_NODES:
    raise ValueError(f"nodes must be [..., {NUM_NODES}, F], got {nodes.shape}")
  batch_shape = nodes.shape[:-2]
  num_graphs = math.prod(batch_shape)
  senders, receivers = senders_receivers(edges, self_loops)
  num_edges = senders.shape[0]
  offsets = jnp.arange(num_graphs, dtype=jnp.int32)[:, None] * NUM_NODES  # [G, 1]
  if globals_ is not None:
    globals_ = jnp.asarray(globals_)
    if globals_.shape[:len(batch_shape)] != batch_shape:
      raise ValueError(f"globals_ batch shape {globals_.shape} does not match nodes {batch_shape}")
    globals_ = globals_.reshape((num_graphs,) + globals_.shape[len(batch_shape):])
  return jraph.GraphsTuple(
      nodes=nodes.reshape((num_graphs * NUM_NODES,) + nodes.shape[-1:]),
      edges=None,
      senders=(jnp.asarray(senders)[None, :] + offsets).reshape(-1),
      receivers=(jnp.asarray(receivers)[None, :] + offsets).reshape(-1),
      globals=globals_,
      n_node=jnp.full((num_graphs,), NUM_NODES, jnp.int32),
      n_edge=jnp.full((num_graphs,), num_edges, jnp.int32),
  )


def unbatch_nodes(graph: jraph.GraphsTuple, batch_shape) -> jax.Array:
  """Inverse of `batched_graph` for the nodes: [G * 68, F] -> [*batch_shape, 68, F]."""
  return jax.tree_util.tree_map(
      lambda x: x.reshape(tuple(batch_shape) + (NUM_NODES,) + x.shape[1:]), graph.nodes)


def gcn_aggregate(graph: jraph.GraphsTuple) -> jax.Array:
  """One symmetric-normalised aggregation, out_i = sum_j A_norm[i, j] x_j.

  The message-passing core of a GCN layer: degrees are counted over the graph's
  own (receiver) edges, so A includes the self loops only if the graph has them.
  For a graph from `batched_graph` this equals `normalized_adjacency(...) @ x`
  for every face.

  Args:
    graph: symmetric GraphsTuple with nodes [N, F].

  Returns:
    [N, F] aggregated node features.
  """
  x = graph.nodes
  num_nodes = x.shape[0]
  ones = jnp.ones(graph.receivers.shape, x.dtype)
  degree = jax.ops.segment_sum(ones, graph.receivers, num_segments=num_nodes)
  inv_sqrt_degree = jax.lax.rsqrt(jnp.maximum(degree, 1.0))[:, None]  # isolated nodes -> 0
  messages = (x * inv_sqrt_degree)[graph.senders]
  return jax.ops.segment_sum(messages, graph.receivers, num_segments=num_nodes) * inv_sqrt_degree


def schematic_face() -> np.ndarray:
  """[68, 2] float32 hand-made frontal face in normalised [-1, 1] coordinates.

  Ellipses and arcs placed roughly like a centred face crop, in iBUG order (x
  right, y down). Not a data mean (that is `emotalk_jax.media.face.template()`):
  meant for dependency-free tests and demos.
  """
  def arc(cx, cy, ax, ay, angles):
    return np.stack([cx + ax * np.cos(angles), cy + ay * np.sin(angles)], axis=-1)

  def loop(cx, cy, ax, ay, n):
    # Starts at the image-left corner, runs over the top (y < cy), returns below.
    return arc(cx, cy, ax, ay, np.pi + 2.0 * np.pi * np.arange(n) / n)

  jaw = arc(0.0, -0.1, 0.75, 0.85, np.linspace(np.pi, 0.0, 17))
  brow_angles = np.linspace(np.pi, 2.0 * np.pi, 5)
  right_brow = arc(-0.37, -0.38, 0.22, 0.08, brow_angles)
  left_brow = arc(0.37, -0.38, 0.22, 0.08, brow_angles)
  nose_bridge = np.stack([np.zeros(4), np.linspace(-0.28, 0.1, 4)], axis=-1)
  nostrils = np.stack([np.linspace(-0.14, 0.14, 5), 0.2 + 0.03 * np.cos(np.linspace(-1, 1, 5))],
                      axis=-1)
  right_eye = loop(-0.33, -0.22, 0.12, 0.05, 6)
  left_eye = loop(0.33, -0.22, 0.12, 0.05, 6)
  outer_lip = loop(0.0, 0.45, 0.3, 0.13, 12)
  inner_lip = loop(0.0, 0.45, 0.19, 0.05, 8)
  face = np.concatenate([jaw, right_brow, left_brow, nose_bridge, nostrils, right_eye, left_eye,
                         outer_lip, inner_lip])
  return face.astype(np.float32)


def mouth_opening(landmarks, xp=jnp):
  """[..., 68, 2] landmarks (y down, an upright face) -> [...] the mouth opening: the mean of the
  `INNER_LIP_PAIRS`' vertical gaps, lower lip's y minus upper lip's, in the landmarks' units (NaN
  where they are NaN). Negative where the lips cross: a distance between the points would read
  crossed lips as an open mouth, and stage 1, trained on it, learned to cross one side pair to
  open its mouth (docs/results.md#the-mouth-opening-is-a-signed-gap). `xp`: jax.numpy or numpy."""
  landmarks = xp.asarray(landmarks)
  upper = landmarks[..., [a for a, _ in INNER_LIP_PAIRS], 1]
  lower = landmarks[..., [b for _, b in INNER_LIP_PAIRS], 1]
  return xp.mean(lower - upper, -1)
