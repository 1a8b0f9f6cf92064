"""The package's import layers, read from the source (every import statement, also those inside
functions).

Low to high: the base modules (errors, bundled, emotions, cache) <- media <- models <- checkpoints,
stages <- evaluate <- train, generate <- bench, cli. A module imports only its own layer or lower
ones; train and generate never import each other; only train, bench and cli read datasets
(`data_pipelines`, TensorFlow).
"""

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "emotalk_jax"

LAYERS = (
    ("errors", "bundled", "emotions", "cache"),
    ("media",),
    ("models",),
    ("checkpoints", "stages"),
    ("evaluate",),
    ("train", "generate"),
    ("bench", "cli"),
)
LAYER_OF = {part: i for i, parts in enumerate(LAYERS) for part in parts}
NEVER = {("train", "generate"), ("generate", "train")}
DATASET_READERS = {"train", "bench", "cli"}


def _modules() -> dict:
  """{'emotalk_jax.media.audio': path} for every module of the package."""
  out = {}
  for path in PACKAGE.rglob("*.py"):
    parts = path.relative_to(ROOT).with_suffix("").parts
    out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
  return out


def _imports(name: str, path: pathlib.Path) -> set:
  """The absolute names of the package (and data_pipelines) modules `path` imports, anywhere in
  it."""
  package = name if path.name == "__init__.py" else name.rpartition(".")[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import):
      found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ""
      if node.level:
        base = ".".join(
            package.split(".")[:len(package.split(".")) - node.level + 1] +
            ([base] if base else []))
      found.update(f"{base}.{alias.name}" for alias in node.names)
      found.add(base)
  return {f for f in found if f.split(".")[0] in ("emotalk_jax", "data_pipelines")}


def _part(module: str) -> str:
  """'emotalk_jax.media.audio' -> 'media'; 'emotalk_jax.stages' -> 'stages'; data_pipelines ->
  itself."""
  bits = module.split(".")
  return bits[0] if bits[0] == "data_pipelines" else (bits[1] if len(bits) > 1 else "")


def test_every_module_belongs_to_a_layer():
  parts = {_part(m) for m in _modules()} - {""}
  assert parts <= set(LAYER_OF), f"modules outside the layers: {sorted(parts - set(LAYER_OF))}"


def test_imports_follow_the_layers():
  problems = []
  for name, path in _modules().items():
    own = _part(name)
    if not own:
      continue
    for target in _imports(name, path):
      other = _part(target)
      if other == "data_pipelines":
        if own not in DATASET_READERS:
          problems.append(
              f"{name} imports {target} (datasets are read only by {sorted(DATASET_READERS)})")
      elif other and other != own and (LAYER_OF[other] > LAYER_OF[own] or (own, other) in NEVER):
        problems.append(f"{name} ({own}) imports {target} ({other})")
  assert not problems, "\n".join(sorted(problems))


def test_no_import_cycles_between_modules():
  modules = _modules()
  graph = {name: {t for t in _imports(name, path) if t in modules and t != name}
           for name, path in modules.items()}
  # A package's __init__ is imported with any of its modules; the edge from a module to its own
  # package
  # is not a cycle of the code.
  for name in graph:
    graph[name] = {t for t in graph[name] if not name.startswith(t + ".")}
  state, stack = {}, []

  def visit(node):
    state[node] = "open"
    stack.append(node)
    for nxt in sorted(graph[node]):
      if state.get(nxt) == "open":
        cycle = stack[stack.index(nxt):] + [nxt]
        pytest.fail("import cycle: " + " -> ".join(cycle))
      if nxt not in state:
        visit(nxt)
    stack.pop()
    state[node] = "done"

  for node in sorted(graph):
    if node not in state:
      visit(node)


def test_the_layer_check_catches_a_violation(tmp_path, monkeypatch):
  """The checker itself: a media module that imports a trainer is reported."""
  fake = tmp_path / "emotalk_jax" / "media"
  fake.mkdir(parents=True)
  (fake / "bad.py").write_text("def f():\n  from emotalk_jax.train import loop\n")
  monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path / "emotalk_jax")
  monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
  with pytest.raises(AssertionError,
                     match=r"emotalk_jax.media.bad \(media\) imports emotalk_jax.train.loop"):
    test_imports_follow_the_layers()


INFERENCE_MODULES = ("emotalk_jax.cli.main", "emotalk_jax.generate.pipeline",
                     "emotalk_jax.generate.finetune", "emotalk_jax.evaluate.harness",
                     "emotalk_jax.evaluate.manifest", "emotalk_jax.stages",
                     "emotalk_jax.checkpoints")


@pytest.mark.slow
def test_inference_modules_do_not_import_tensorflow():
  """Importing what `emotalk generate / demo / finetune / evaluate` run loads no TensorFlow or TFDS
  (the
  full generate call is checked in test_generate_pipeline.py)."""
  code = (
      "import sys, importlib\n"
      f"for m in {INFERENCE_MODULES!r}: importlib.import_module(m)\n"
      "print(sorted(m for m in sys.modules "
      "if m.split('.')[0] in ('tensorflow', 'tensorflow_datasets')))\n"
  )
  out = subprocess.run([sys.executable, "-c", code],
                       capture_output=True,
                       text=True,
                       cwd=ROOT,
                       check=True)
  assert out.stdout.strip() == "[]", out.stdout[:500]
