"""MiniFASNet (V2 and V1SE) as a TensorFlow graph, from a state dict of numpy arrays.

Recipe-only (needs TensorFlow). Written from the published architecture: every
convolution is followed by batch norm (folded in here) and, in a "block", a per-channel
PReLU; a "linear block" has no activation. Upstream pads 3x3 convolutions by one pixel on
every side, which TensorFlow's SAME does not do for stride 2, so padding is explicit.
The structure (which stages, how many residual units, where the squeeze-excitation
sits) is read from the state dict's keys rather than written out, so one graph serves
both networks. The input is raw BGR pixels 0..255 (upstream does not normalise), so the
int8 model takes uint8 input with scale 1 and zero point 0.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

SIZE = 80
EPS = 1e-5  # PyTorch's BatchNorm default


def _bn(sd: dict[str, np.ndarray], p: str) -> tuple[np.ndarray, np.ndarray]:
    g = sd[f"{p}.weight"].astype(np.float64)
    b = sd[f"{p}.bias"].astype(np.float64)
    mean = sd[f"{p}.running_mean"].astype(np.float64)
    var = sd[f"{p}.running_var"].astype(np.float64)
    scale = g / np.sqrt(var + EPS)
    return scale, b - mean * scale


class _Conv:
    """A convolution with its batch norm folded in; optionally a PReLU after it."""

    def __init__(self, sd: dict[str, np.ndarray], p: str, conv: str, bn: str, *, stride: int = 1,
                 pad: int = 0, prelu: str | None = None) -> None:
        w = sd[f"{p}.{conv}.weight"].astype(np.float64)  # (out, in/groups, kh, kw)
        scale, shift = _bn(sd, f"{p}.{bn}")
        w = w * scale[:, None, None, None]
        self.depthwise = w.shape[1] == 1 and w.shape[0] > 1
        # (kh, kw, in, 1) depthwise or (kh, kw, in, out); kept float64 until the graph is traced
        self.w = np.transpose(w[:, 0], (1, 2, 0))[..., None] if self.depthwise else np.transpose(w, (2, 3, 1, 0))
        self.b = shift
        self.stride, self.pad = stride, pad
        # Stored negated, shaped (1, 1, C): relu(x) + relu(-x) * (-alpha) is the form the
        # converter fuses into one PRELU op (separate ops lose far more in int8).
        self.neg_alpha = (tf.constant(-sd[f"{p}.{prelu}.weight"].astype(np.float32).reshape(1, 1, -1))
                          if prelu else None)

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        if self.pad:
            x = tf.pad(x, [[0, 0], [self.pad, self.pad], [self.pad, self.pad], [0, 0]])
        s = [1, self.stride, self.stride, 1]
        if self.depthwise:
            x = tf.nn.depthwise_conv2d(x, _f32(self.w), s, "VALID") + _f32(self.b)
        else:
            x = tf.nn.conv2d(x, _f32(self.w), s, "VALID") + _f32(self.b)
        if self.neg_alpha is not None:
            x = tf.nn.relu(x) + tf.nn.relu(-x) * self.neg_alpha
        return x


def _f32(a: np.ndarray) -> tf.Tensor:
    return tf.constant(a.astype(np.float32))


def _block(sd, p, *, stride=1, pad=0) -> _Conv:
    return _Conv(sd, p, "conv", "bn", stride=stride, pad=pad, prelu="prelu")


def _linear(sd, p, *, stride=1, pad=0) -> _Conv:
    return _Conv(sd, p, "conv", "bn", stride=stride, pad=pad)


class _Unit:
    """1x1 expand block, 3x3 depthwise block, 1x1 linear projection; optional residual and SE."""

    def __init__(self, sd, p: str, stride: int, residual: bool) -> None:
        self.expand = _block(sd, f"{p}.conv")
        self.dw = _block(sd, f"{p}.conv_dw", stride=stride, pad=1)
        self.project = _linear(sd, f"{p}.project")
        self.residual = residual
        self.se = None
        if f"{p}.se_module.fc1.weight" in sd:
            self.se = (_Conv(sd, f"{p}.se_module", "fc1", "bn1"), _Conv(sd, f"{p}.se_module", "fc2", "bn2"))

    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        y = self.project(self.dw(self.expand(x)))
        if self.se is not None and self.residual:
            fc1, fc2 = self.se
            s = tf.reduce_mean(y, axis=[1, 2], keepdims=True)
            s = tf.sigmoid(fc2(tf.nn.relu(fc1(s))))
            y = y * s
        return x + y if self.residual else y


def _stage(sd, p: str) -> list[_Unit]:
    units, i = [], 0
    while f"{p}.model.{i}.conv.conv.weight" in sd:
        units.append(_Unit(sd, f"{p}.model.{i}", 1, True))
        i += 1
    return units


class MiniFASNet(tf.Module):
    """(1, 80, 80, 3) float BGR 0..255 → (1, 3) softmax: [2D attack, real, 3D attack]."""

    def __init__(self, sd: dict[str, np.ndarray]) -> None:
        super().__init__()
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
        self.layers = [_block(sd, "conv1", stride=2, pad=1), _block(sd, "conv2_dw", pad=1),
                       _Unit(sd, "conv_23", 2, False), *_stage(sd, "conv_3"),
                       _Unit(sd, "conv_34", 2, False), *_stage(sd, "conv_4"),
                       _Unit(sd, "conv_45", 2, False), *_stage(sd, "conv_5"),
                       _block(sd, "conv_6_sep"), _linear(sd, "conv_6_dw")]
        scale, shift = _bn(sd, "bn")
        linear = sd["linear.weight"].astype(np.float64) * scale[:, None]  # (128, 512)
        prob = sd["prob.weight"].astype(np.float64)  # (3, 128)
        # linear → bn → (dropout) → prob is affine end to end: one matrix and one bias.
        self.head_w = tf.constant((prob @ linear).T.astype(np.float32))
        self.head_b = tf.constant((prob @ shift).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, SIZE, SIZE, 3], tf.float32, name="crop_bgr")])
    def __call__(self, x: tf.Tensor) -> tf.Tensor:
        for layer in self.layers:
            x = layer(x)
        x = tf.reshape(x, [1, -1])
        return tf.nn.softmax(tf.matmul(x, self.head_w) + self.head_b, name="probabilities")
