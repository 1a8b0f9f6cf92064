"""Shared pytest fixtures: the repo's bundled media and the optional ../shared/data tree."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = pathlib.Path(os.environ.get("EMOTALK_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> pathlib.Path:
  """Real media from ../shared/data (research-only licences, never copied into the repo)."""
  if not (SHARED_DATA / "README.md").exists():
    pytest.skip(f"real-media tests need ../shared/data (not found at {SHARED_DATA})")
  return SHARED_DATA
