"""Rebuild dlib's face ResNet as a TensorFlow graph (recipe-only; needs TensorFlow).

Batch norm is already folded into dlib's ``affine_`` layers; here each affine is folded
into the convolution before it, and the input normalisation ``(pixel - mean) / 256`` is
folded into the first convolution. That first convolution has no padding, so the fold is
exact: the graph takes raw RGB pixels 0..255, which lets the int8 model take uint8 input
with scale 1.0 and zero point 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from dlib_dat import Layer, Network

CHIP = 150


def _fold(conv: Layer, affine: Layer, mean_rgb: tuple[float, float, float] | None):
    w = conv.weights.astype(np.float64)  # (N, K, R, C)
    b = conv.bias.astype(np.float64)
    if mean_rgb is not None:
        mean = np.asarray(mean_rgb, dtype=np.float64)
        b = b - np.einsum("nkrc,k->n", w, mean) / 256.0
        w = w / 256.0
    g = affine.gamma.astype(np.float64)
    w = w * g[:, None, None, None]
    b = b * g + affine.beta.astype(np.float64)
    return np.transpose(w, (2, 3, 1, 0)).astype(np.float32), b.astype(np.float32)


def _add_padded(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """dlib's add_prev: the larger shape wins; the smaller input is zero-padded at the end."""
    sa, sb = a.shape.as_list()[1:], b.shape.as_list()[1:]
    out = [max(x, y) for x, y in zip(sa, sb, strict=True)]

    def pad(t, s):
        if s == out:
            return t
        return tf.pad(t, [[0, 0], [0, out[0] - s[0]], [0, out[1] - s[1]], [0, out[2] - s[2]]])

    return pad(a, sa) + pad(b, sb)


class DlibResNet(tf.Module):
    """Forward pass over a parsed :class:`Network`; input (1, 150, 150, 3) float RGB 0..255."""

    def __init__(self, net: Network) -> None:
        super().__init__()
        self.steps: list[tuple] = []
        layers = net.layers
        mean = layers[0].mean_rgb
        first = True
        i = 1
        while i < len(layers):
            layer = layers[i]
            if layer.kind == "con":
                w, b = _fold(layer, layers[i + 1], mean if first else None)
                first = False
                pad = layer.padding[0]
                if pad and layer.stride[0] == 1 and pad == layer.size[0] // 2:
                    mode = "SAME"
                elif pad:
                    raise ValueError("explicit padding is not in this network")
                else:
                    mode = "VALID"
                self.steps.append(("con", tf.constant(w), tf.constant(b), layer.stride[0], mode))
                i += 2  # the affine was folded in
                continue
            self.steps.append((layer.kind, layer))
            i += 1

    @tf.function(input_signature=[tf.TensorSpec([1, CHIP, CHIP, 3], tf.float32, name="chip_rgb")])
    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        tags: dict[int, tf.Tensor] = {}
        for step in self.steps:
            kind = step[0]
            if kind == "con":
                _, w, b, stride, mode = step
                x = tf.nn.conv2d(x, w, strides=stride, padding=mode) + b
            elif kind == "relu":
                x = tf.nn.relu(x)
            elif kind == "max_pool":
                s = step[1]
                x = tf.nn.max_pool2d(x, s.size[0], s.stride[0], "VALID")
            elif kind == "avg_pool":
                s = step[1]
                if s.size[0] == 0:
                    x = tf.reduce_mean(x, axis=[1, 2])
                else:
                    x = tf.nn.avg_pool2d(x, s.size[0], s.stride[0], "VALID")
            elif kind == "tag":
                tags[step[1].tag] = x
            elif kind == "skip":
                x = tags[step[1].tag]
            elif kind == "add_prev":
                x = _add_padded(x, tags[step[1].tag])
            elif kind == "fc":
                x = tf.matmul(x, tf.constant(step[1].weights))
            else:
                raise ValueError(f"unknown step {kind}")
        return tf.identity(x, name="descriptor")
