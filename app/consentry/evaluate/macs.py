"""Multiply-accumulates per invoke of a .tflite model, read from its flatbuffer.

Counted for the ops that carry nearly all of the arithmetic in our models: CONV_2D
(output elements x kernel height x width x input channels), DEPTHWISE_CONV_2D (output
elements x kernel height x width) and FULLY_CONNECTED (output elements x input features).
Pooling, adds, activations and (de)quantisation are left out: they are memory-bound and
small beside the convolutions. The schema is the one ai-edge-litert ships.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ModelError

_COUNTED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _schema():
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as exc:  # the Debian/Pi runtime may ship without the schema module
        raise ModelError(f"the TFLite schema is not available ({exc})") from exc
    return schema


def model_macs(path: Path) -> dict:
    """{"macs": total, "by_op": {op: macs}} for the first subgraph of the model at ``path``."""
    schema = _schema()
    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAs(buf, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)

    def shape(index: int) -> np.ndarray:
        return graph.Tensors(index).ShapeAsNumpy().astype(np.int64)

    by_op: dict[str, int] = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        if name not in _COUNTED:
            continue
        out = int(np.prod(shape(op.Outputs(0))))
        weights = shape(op.Inputs(1))
        if name == "CONV_2D":  # filter (out channels, kh, kw, in channels)
            macs = out * int(np.prod(weights[1:]))
        elif name == "DEPTHWISE_CONV_2D":  # filter (1, kh, kw, channels)
            macs = out * int(weights[1] * weights[2])
        else:  # weights (units, in features)
            macs = out * int(weights[-1])
        by_op[name] = by_op.get(name, 0) + macs
    return {"macs": sum(by_op.values()), "by_op": by_op}


def manifest_macs(manifest, names: list[str]) -> dict[str, dict]:
    """``model_macs`` for each named manifest entry, in millions (MMAC, one decimal)."""
    out = {}
    for name in names:
        counted = model_macs(manifest.get(name).path)
        out[name] = {"mmac": round(counted["macs"] / 1e6, 1),
                     "by_op_mmac": {k: round(v / 1e6, 1) for k, v in counted["by_op"].items()}}
    return out


def frame_figures(pipeline, medians: dict[str, float]) -> dict:
    """MMAC of the models a one-face frame runs, and our own code's share of the frame.

    ``medians``: stage name → median ms (bench's detect, landmarks, embed, frame_with_face).
    The embedder counts twice with the mirror embed. ``pipeline_share`` is the part of the
    median frame with a face outside the three model stages' medians (quality, refine,
    align, glue); ``frame_over_models`` is that frame over the models' sum.
    """
    opts = pipeline.options
    models = manifest_macs(pipeline.manifest, [opts.detector, opts.landmarks, opts.embedder])
    invokes = {opts.detector: 1, opts.landmarks: 1, opts.embedder: 2 if pipeline.embedder.flip else 1}
    per_frame = sum(models[name]["mmac"] * n for name, n in invokes.items())
    model_ms = sum(medians.get(k, 0.0) for k in ("detect", "landmarks", "embed"))
    frame_ms = medians.get("frame_with_face", 0.0)
    return {
        "models": {name: {**models[name], "invokes_per_face": invokes[name]} for name in models},
        "mmac_per_one_face_frame": round(per_frame, 1),
        "model_ms": round(model_ms, 3),
        "pipeline_ms": round(frame_ms - model_ms, 3),
        "pipeline_share": round((frame_ms - model_ms) / frame_ms, 3) if frame_ms else None,
        "frame_over_models": round(frame_ms / model_ms, 3) if model_ms else None,
    }
