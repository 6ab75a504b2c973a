"""detectflow: computer-vision detection as asynchronous jobs, autoscaled on queue depth."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("detectflow")  # the one place it is set: pyproject.toml's [project] version
except PackageNotFoundError:  # a source tree on sys.path without an install
    __version__ = "0+unknown"
