"""The policy-steerable classifier: tokenizer windows, ONNX Runtime session, export.

Pure code: no Kafka here. The pipeline sees only :class:`Classifier`.
"""

from worker.model.manifest import Manifest, load_manifest
from worker.model.runtime import Classifier, OnnxClassifier, load_classifier

__all__ = ["Classifier", "Manifest", "OnnxClassifier", "load_classifier", "load_manifest"]
