"""Test vectors: the YAML model, its loader, the decision registry, and ``{variables}``."""
from conformance.vectors.expand import expand, expand_regex
from conformance.vectors.loader import VectorLoadError, load_decisions, load_file, load_tree
from conformance.vectors.model import Decision, DecisionRef, Reading, Step, Vector, VectorFile

__all__ = [
           "Decision",
           "DecisionRef",
           "Reading",
           "Step",
           "Vector",
           "VectorFile",
           "VectorLoadError",
           "expand",
           "expand_regex",
           "load_decisions",
           "load_file",
           "load_tree",
]
