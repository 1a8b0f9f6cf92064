"""Tests for the 68-node face graph and its batched jraph form."""

import jax
import jax.numpy as jnp
import jraph
import numpy as np
import pytest
from scipy.sparse import csgraph

from emotalk_jax.models import face_graph

TEMPLATE = face_graph.schematic_face()


def _num_components(edges):
  return csgraph.connected_components(face_graph.dense_adjacency(edges, self_loops=False))[0]


def test_parts_cover_all_nodes_in_order():
  ranges = [(start, stop) for start, stop, _ in face_graph.PARTS.values()]
  assert ranges[0][0] == 0 and ranges[-1][1] == face_graph.NUM_NODES
  assert all(prev[1] == cur[0] for prev, cur in zip(ranges, ranges[1:]))
  np.testing.assert_array_equal(face_graph.MOUTH, np.arange(48, 68))
  assert face_graph.part_index()[36] == list(face_graph.PARTS).index("right_eye")


def test_part_edge_counts():
  # Open chains have n - 1 edges, loops n; the nose bridge also holds 30-33.
  expected = {"jaw": 16, "right_brow": 4, "left_brow": 4, "nose_bridge": 4, "nostrils": 4,
              "right_eye": 6, "left_eye": 6, "outer_lip": 12, "inner_lip": 8}
  groups = face_graph.part_edge_groups()
  assert {name: len(e) for name, e in groups.items()} == expected
  edges = face_graph.part_edges()
  assert edges.shape == (64, 2) and edges.dtype == np.int32
  assert np.all(edges[:, 0] < edges[:, 1])
  assert len(np.unique(edges, axis=0)) == len(edges)
  pairs = set(map(tuple, edges.tolist()))
  assert (36, 41) in pairs and (60, 67) in pairs  # closed loops
  assert (0, 16) not in pairs  # the jaw is open
  assert (30, 33) in pairs


def test_connectivity():
  assert _num_components(face_graph.part_edges()) == face_graph.NUM_PART_COMPONENTS == 8
  delaunay = face_graph.delaunay_edges(TEMPLATE)
  index = face_graph.part_index()
  assert np.all(index[delaunay[:, 0]] != index[delaunay[:, 1]])
  assert np.all(delaunay[:, 0] < delaunay[:, 1])
  edges = face_graph.edges(include_delaunay=True, template=TEMPLATE)
  assert len(edges) == 64 + len(delaunay)
  assert _num_components(edges) == 1
  with pytest.raises(ValueError):
    face_graph.edges(include_delaunay=True)


@pytest.mark.parametrize("self_loops", [True, False])
def test_senders_receivers_and_adjacency(self_loops):
  edges = face_graph.part_edges()
  senders, receivers = face_graph.senders_receivers(edges, self_loops=self_loops)
  assert senders.dtype == receivers.dtype == np.int32
  assert len(senders) == 2 * len(edges) + (68 if self_loops else 0)
  directed = set(zip(senders.tolist(), receivers.tolist()))
  assert directed == {(r, s) for s, r in directed}
  assert sum(s == r for s, r in directed) == (68 if self_loops else 0)

  adjacency = face_graph.dense_adjacency(edges, self_loops=self_loops)
  assert adjacency.shape == (68, 68) and adjacency.dtype == np.float32
  np.testing.assert_array_equal(adjacency, adjacency.T)
  np.testing.assert_array_equal(np.diag(adjacency), float(self_loops))
  assert adjacency.sum() == len(senders)

  norm = face_graph.normalized_adjacency(edges, self_loops=self_loops)
  degree = adjacency.sum(axis=1)
  np.testing.assert_allclose(norm,
                             adjacency / np.sqrt(degree[:, None] * degree[None, :]),
                             rtol=1e-6)
  assert np.max(np.abs(np.linalg.eigvalsh(norm))) <= 1.0 + 1e-5


def test_batched_graph_matches_jraph_batch():
  rng = np.random.default_rng(0)
  nodes = rng.standard_normal((2, 3, 68, 5)).astype(np.float32)
  globals_ = rng.standard_normal((2, 3, 4)).astype(np.float32)
  graph = face_graph.batched_graph(nodes, globals_=globals_)
  senders, receivers = face_graph.senders_receivers()
  singles = [
      jraph.GraphsTuple(nodes=nodes[b, t], edges=None, senders=senders, receivers=receivers,
                        globals=globals_[b, t][None], n_node=np.array([68]),
                        n_edge=np.array([len(senders)]))
      for b in range(2) for t in range(3)
  ]
  reference = jraph.batch(singles)
  for field in ("nodes", "senders", "receivers", "globals", "n_node", "n_edge"):
    np.testing.assert_array_equal(np.asarray(getattr(graph, field)),
                                  np.asarray(getattr(reference, field)), err_msg=field)
  assert graph.edges is None
  np.testing.assert_array_equal(face_graph.unbatch_nodes(graph, (2, 3)), nodes)
  assert face_graph.batched_graph(nodes[0, 0]).n_node.shape == (1,)  # no batch dims: one graph


def test_batched_graph_under_jit():
  edges = face_graph.edges(include_delaunay=True, template=TEMPLATE)

  @jax.jit
  def roundtrip(x):
    graph = face_graph.batched_graph(x, edges)
    return face_graph.unbatch_nodes(graph._replace(nodes=face_graph.gcn_aggregate(graph)),
                                    x.shape[:-2])

  x = jnp.ones((2, 4, 68, 3))
  out = roundtrip(x)
  assert out.shape == x.shape
  # Aggregating a constant under D^-1/2 A D^-1/2 is not constant, but stays finite and positive.
  assert bool(jnp.all(jnp.isfinite(out))) and bool(jnp.all(out > 0))


@pytest.mark.parametrize("include_delaunay", [False, True])
@pytest.mark.parametrize("self_loops", [True, False])
def test_gcn_aggregate_equals_dense(include_delaunay, self_loops):
  edges = face_graph.edges(include_delaunay=include_delaunay, template=TEMPLATE)
  x = np.random.default_rng(1).standard_normal((3, 2, 68, 6)).astype(np.float32)
  graph = face_graph.batched_graph(x, edges, self_loops=self_loops)
  out = face_graph.unbatch_nodes(graph._replace(nodes=face_graph.gcn_aggregate(graph)), (3, 2))
  expected = np.einsum("ij,btjf->btif", face_graph.normalized_adjacency(edges, self_loops), x)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-5, atol=1e-5)
