"""TensorFlow Lite image classifiers (e.g. the MLCommons Tiny ResNet-8), run with ai-edge-litert (the `tflite` extra).

    {"kind": "tflite", "file": "model.tflite", "scale"?: 255.0}

The model gets NHWC float input: zoo2vec's [0, 1] images times `scale`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from zoo2vec.errors import require
from zoo2vec.zoo.adapters import ModelSource, register
from zoo2vec.zoo.card import ModelCard


class TFLiteModel:
    def __init__(self, path: Path, card: ModelCard, *, scale: float = 1.0):
        litert = require("ai_edge_litert.interpreter", "tflite")
        self.card = card
        self.scale = scale
        self.interpreter = litert.Interpreter(model_path=str(path))
        self._input = self.interpreter.get_input_details()[0]["index"]
        self._output = self.interpreter.get_output_details()[0]["index"]
        self._batch = 0

    def predict(self, batch):
        x = np.ascontiguousarray(np.asarray(batch, dtype=np.float32).transpose(0, 2, 3, 1) * self.scale)
        if x.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._input, list(x.shape))
            self.interpreter.allocate_tensors()
            self._batch = x.shape[0]
        self.interpreter.set_tensor(self._input, x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output).copy()


@register("tflite")
def load(source: ModelSource) -> TFLiteModel:
    return TFLiteModel(source.file(), source.card, scale=float(source.spec.get("scale", 1.0)))
