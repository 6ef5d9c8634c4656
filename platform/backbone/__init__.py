"""backbone: build, choose and serve a shared retrieval backbone (dense retriever + reranker) on Ray."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("backbone")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
