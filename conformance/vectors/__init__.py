"""Test vectors: the YAML model, its loader, and the expansion of ``{variables}``."""
from conformance.vectors.model import Step, Vector, VectorFile
from conformance.vectors.loader import VectorLoadError, load_file, load_tree
from conformance.vectors.expand import expand, expand_regex

__all__ = ["Step", "Vector", "VectorFile", "VectorLoadError", "load_file", "load_tree",
           "expand", "expand_regex"]
