"""Evaluating many videos from a CSV manifest: a JSON and plots per row, and a summary table.

Manifest: a CSV with a header row. Columns: `generated` (required), and optionally `reference`,
  `source`,
`emotion`, `audio` and `name` (the row's output name; default the generated file's stem, made
unique). Relative paths are relative to the manifest's folder; an empty cell means "not given". The
whole manifest is checked before anything runs (unknown or missing columns, no rows, a missing file,
bad emotion text: an InputError naming the manifest, the row and the cell). A row that fails while
it runs (an undecodable video, no face) is recorded with its reason in its JSON and in the summary,
and the other rows go on.

Outputs in DIR: `<name>.json` (the `evaluate_files` result, or {'error': ...}), `<name>_curves.png`,
`<name>_emotion.png`, `summary.md` (one row per video, then the mean of each column over the rows
that have it) and `summary.json` (the same numbers).
"""

import csv
import json
import os
import pathlib

from emotalk_jax import emotions
from emotalk_jax.errors import InputError
from emotalk_jax.evaluate import harness as evaluate
from emotalk_jax.evaluate import plots as eval_plots

COLUMNS = ("generated", "reference", "source", "emotion", "audio", "name")
PATH_COLUMNS = ("generated", "reference", "source", "audio")
# (header, how to read it from a result) of the summary table.
_TABLE = (("frames", lambda r: r["frames"]["generated"]), ("PSNR", lambda r: r.get("psnr")),
          ("SSIM", lambda r: r.get("ssim")), ("CPBD", lambda r: r.get("cpbd")),
          ("M-LMD", lambda r: r.get("m_lmd")), ("F-LMD", lambda r: r.get("f_lmd")),
          ("CSIM", lambda r: r.get("csim")), ("emotion acc", lambda r: _as_number(
              (r.get("emotion") or {}).get("correct"))), ("lip r", lambda r:
                                                          (r.get("lipsync") or {}).get("r_lag0")),
          ("LSE-D", lambda r:
           (r.get("syncnet") or {}).get("lse_d")), ("LSE-C", lambda r:
                                                    (r.get("syncnet") or {}).get("lse_c")))


def _as_number(value):
  return None if value is None else float(value)


def write_text(path, text: str) -> pathlib.Path:
  """Writes text through a temporary name renamed when complete."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.partial")
  try:
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
  finally:
    tmp.unlink(missing_ok=True)
  return path


def write_json(path, value) -> pathlib.Path:
  # allow_nan=False: `evaluate.to_json` has already turned NaN into null, so the file is strict
  # JSON.
  return write_text(path, json.dumps(value, indent=1, allow_nan=False) + "\n")


def read_manifest(path) -> list[dict]:
  """Parses and checks a manifest; returns one dict per row with resolved paths (None for empty
  cells)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise InputError(path, "no such manifest file" if not path.exists() else "is not a file")
  try:
    with open(path, newline="", encoding="utf-8-sig") as f:
      reader = csv.DictReader(f)
      header = [h.strip().lower() for h in (reader.fieldnames or [])]
      rows = [list(row.values()) for row in reader]
  except (UnicodeDecodeError, csv.Error) as e:
    raise InputError(path, f"is not a readable CSV file ({e})") from None
  if not header:
    raise InputError(path, f"is empty; it needs a header row with at least the column 'generated' "
                           f"(columns: {', '.join(COLUMNS)})")
  unknown = [h for h in header if h not in COLUMNS]
  if unknown:
    raise InputError(path, f"unknown column {unknown[0]!r}; columns are {', '.join(COLUMNS)}")
  if "generated" not in header:
    raise InputError(path, f"missing column 'generated' (found: {', '.join(header)})")
  if not rows:
    raise InputError(path, "has a header but no rows")
  out, used = [], set()
  for number, values in enumerate(rows, start=2):  # Line numbers as an editor shows them.
    cells = {h: (v or "").strip() if isinstance(v, str) else "" for h, v in zip(header, values)}
    row = {c: (cells.get(c) or None) for c in COLUMNS}
    where = f"{path}: line {number}"
    if row["generated"] is None:
      raise InputError(where, "the 'generated' cell is empty")
    for column in PATH_COLUMNS:
      if row[column] is not None:
        p = pathlib.Path(row[column]).expanduser()
        p = p if p.is_absolute() else path.parent / p
        if not p.is_file():
          raise InputError(
              where,
              f"{column} {row[column]!r}: {'no such file' if not p.exists() else 'not a file'}")
        row[column] = str(p)
    if row["emotion"] is not None:
      try:
        emotions.parse_emotion(row["emotion"])
      except InputError as e:
        raise InputError(where, f"emotion {row['emotion']!r}: {e.problem}") from None
    name = row["name"] or pathlib.Path(row["generated"]).stem
    unique, k = name, 2
    while unique in used:
      unique, k = f"{name}_{k}", k + 1
    used.add(unique)
    row["name"] = unique
    out.append(row)
  return out


def _format(value) -> str:
  return "" if value is None else (f"{value:.4g}" if isinstance(value, float) else str(value))


def summary_table(rows: list[dict]) -> tuple[str, dict]:
  """Markdown table of per-row results (dicts with 'name' and 'result' or 'error'), and the
  column means."""
  header = ["video"] + [h for h, _ in _TABLE]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  columns = {h: [] for h, _ in _TABLE}
  failed = []
  for row in rows:
    if "error" in row:
      failed.append(row)
      continue
    cells = []
    for h, get in _TABLE:
      value = get(row["result"])
      if value is not None:
        columns[h].append(float(value))
      cells.append(_format(value))
    lines.append("| " + " | ".join([row["name"]] + cells) + " |")
  means = {h: (sum(v) / len(v) if v else None) for h, v in columns.items()}
  lines.append("| **mean** | " + " | ".join(_format(means[h]) for h, _ in _TABLE) + " |")
  text = "\n".join(lines) + "\n"
  if failed:
    text += "\nFailed rows:\n\n" + "".join(f"* {r['name']}: {r['error']}\n" for r in failed)
  return text, means


def evaluate_manifest(manifest, out_dir, *, plots: bool = True, progress=None, **kwargs) -> dict:
  """Evaluates every row of a manifest (see the module docstring) into `out_dir`.

  Args:
    manifest: the CSV file.
    out_dir: output folder (created).
    plots: also write each row's PNG plots.
    progress: optional callable(name, index, count) called before each row.
    **kwargs: passed to `evaluate.evaluate_files` (metrics, emotion_model, max_frames, ...).

  Returns:
    {'rows', 'failed', 'means' (column -> mean), 'summary' (markdown path), 'summary_json',
    'out_dir'}.
  """
  rows = read_manifest(manifest)
  evaluate.check_models(**kwargs)
  out_dir = pathlib.Path(out_dir)
  done = []
  for index, row in enumerate(rows):
    if progress:
      progress(row["name"], index, len(rows))
    stem = out_dir / row["name"]
    try:
      result = evaluate.evaluate_files(row["generated"], row["reference"], row["source"],
                                       row["emotion"], row["audio"], **kwargs)
    except InputError as e:
      entry = {
          "name": row["name"],
          "error": str(e),
          "inputs": {
              k: row[k] for k in COLUMNS if k != "name"
          }
      }
      write_json(stem.with_suffix(".json"), entry)
      done.append(entry)
      continue
    if plots:
      result["plots"] = eval_plots.plot_result(result, stem)
    write_json(stem.with_suffix(".json"), result)
    done.append({"name": row["name"], "result": result})
  table, means = summary_table(done)
  summary = out_dir / "summary.md"
  write_text(
      summary, f"# Evaluation of {pathlib.Path(manifest).name}\n\nHarness version "
      f"{evaluate.HARNESS_VERSION}; conventions in the README's Evaluation section.\n\n{table}")
  failed = [{"name": r["name"], "error": r["error"]} for r in done if "error" in r]
  rows_json = [{"name": r["name"], **({"error": r["error"]} if "error" in r else
                                      {h: get(r["result"]) for h, get in _TABLE})} for r in done]
  summary_json = write_json(
      out_dir / "summary.json",
      evaluate.to_json({
          "harness_version": evaluate.HARNESS_VERSION,
          "rows": rows_json,
          "means": means,
          "failed": failed
      }))
  return {
      "rows": len(done),
      "failed": failed,
      "means": evaluate.to_json(means),
      "summary": str(summary),
      "summary_json": str(summary_json),
      "out_dir": str(out_dir)
  }
