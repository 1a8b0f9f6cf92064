"""The exception type for bad user input (and its one special case).

Every check on a user-supplied file raises `InputError(path, problem)`; the CLI prints
`emotalk: error: <path>: <problem>` and exits with status 2, without a traceback.
"""


class InputError(ValueError):
  """A user-supplied input (file, text or value) cannot be used.

  Attributes:
    path: the offending file (or the offending text) as given by the user.
    problem: what is wrong, in words a user can act on.
  """

  def __init__(self, path, problem: str):
    self.path = str(path)
    self.problem = problem
    super().__init__(f"{self.path}: {problem}")


class NoFaceError(InputError):
  """An image or video in which no face was found: bad input for most commands, a result for
  those that judge generated videos (a face the generator distorted past recognition)."""
