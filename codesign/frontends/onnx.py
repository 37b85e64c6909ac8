"""ONNX models to Cascades.

`load_onnx` reads a model (file or ``ModelProto``), fixes symbolic input dims, runs ONNX shape
inference, then walks the graph once in topological order:

* a node whose inputs are all constants (initializers, ``Constant`` outputs, already folded
  values) is *folded*: evaluated at import time by ``onnx.reference.ReferenceEvaluator`` on a
  one-node model, so shape subgraphs (Shape -> Gather -> Concat -> Reshape) and weight-only
  transforms vanish; ``Shape``/``Size`` of a lowered tensor fold from its static shape;
* every other node is lowered through the `OPS` registry of `codesign.frontends.onnx_ops`.

Naming: graph inputs keep their (sanitised) ONNX names, Einsums take the node's name (or its
first output's name when the node has none), and every lowered tensor is renamed to its ONNX
value's name where that name is free.  Constants a lowering reads become WEIGHT tensors that
carry their NumPy data.  Errors are one-line `InputError`s naming the file and node.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from codesign.errors import InputError
from codesign.frontends.onnx_ops import _ELEM_TYPES, OPS, LoweringContext, UnsupportedNode
from codesign.ir.builder import CascadeBuilder, iter_vars, sanitize, var_access
from codesign.ir.cascade import Cascade, Einsum, Role
from codesign.ir.dtypes import DType
from codesign.ir.expr import Access, Expr, map_accesses
from codesign.ir.index import Gathered, IndexExpr
from codesign.limits import check_memory

# Ops never folded even with constant inputs: their value is not a function of the inputs.
_NO_FOLD = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                      "Multinomial", "Bernoulli"})  # fmt: skip


# Largest value constant folding may create: a tiny model must not make gigabytes at import
# (Range(0, 1e11), ConstantOfShape([20000, 20000])).  Real models fold shape vectors and
# weight transposes, far below this.
FOLD_LIMIT_BYTES = 2**30


@dataclass(frozen=True, slots=True)
class OnnxImport:
    """A lowered model and, for every ONNX value that became a tensor, its Cascade name."""

    cascade: Cascade
    tensor_names: Mapping[str, str]


def supported_ops() -> tuple[str, ...]:
    """ONNX op types the frontend lowers (plus any op whose inputs are all constants)."""
    return tuple(sorted(set(OPS) | {"Constant", "Shape", "Size", "ConstantOfShape"}))


def load_onnx(
    source: str | Path | onnx.ModelProto,
    name: str | None = None,
    dims: Mapping[str, int] | None = None,
) -> Cascade:
    """The Cascade of an ONNX model.

    `dims` sizes symbolic input dims by name (e.g. ``{"batch": 1, "sequence": 128}``); a
    symbolic dim not named there is taken as 1.  Raises `InputError` (one line, naming the file
    and node) for a missing or malformed file and for unsupported ops.
    """
    return import_onnx(source, name, dims).cascade


def import_onnx(
    source: str | Path | onnx.ModelProto,
    name: str | None = None,
    dims: Mapping[str, int] | None = None,
) -> OnnxImport:
    """`load_onnx`, also returning the ONNX-value -> tensor-name map (to compare intermediates)."""
    model, label = _read(source)
    if not model.graph.output:
        raise InputError(f"{label}: not a valid ONNX model (the graph has no outputs)")
    _check_default_opset(model, label)
    input_shapes = _input_shapes(model, dict(dims or {}), label)
    inferred = _infer_shapes(model, input_shapes)
    graph_name = name or model.graph.name or (Path(label).stem if label != "<model>" else "model")
    importer = _Importer(model, input_shapes, inferred, label, CascadeBuilder(graph_name))
    return importer.run()


def _check_default_opset(model: onnx.ModelProto, label: str) -> None:
    """Standard ops mean what their opset version says: without one the model is invalid."""
    if any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        return
    node = next((n for n in model.graph.node if n.domain in ("", "ai.onnx")), None)
    if node is not None:
        raise InputError(
            f"{label}: not a valid ONNX model (node {node.name or node.op_type!r} is a standard "
            f"op, but the model imports no opset of the default domain)"
        )


def _read(source: str | Path | onnx.ModelProto) -> tuple[onnx.ModelProto, str]:
    if isinstance(source, onnx.ModelProto):
        return source, "<model>"
    path = Path(source)
    label = str(source)
    if not path.exists():
        raise InputError(f"{label}: no such file")
    if path.is_dir():
        raise InputError(f"{label}: is a directory, expected an .onnx file")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - protobuf raises DecodeError, RuntimeError, ...
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise InputError(f"{label}: not a valid ONNX model ({reason})") from None
    if not model.HasField("graph"):
        raise InputError(f"{label}: not a valid ONNX model (no graph)")
    return model, label


def _input_shapes(
    model: onnx.ModelProto, dims: dict[str, int], label: str
) -> dict[str, tuple[int, ...]]:
    """Concrete shapes of the graph inputs: symbolic dims from `dims`, others 1."""
    known: set[str] = set()
    initializers = {t.name for t in model.graph.initializer}
    shapes: dict[str, tuple[int, ...]] = {}
    for value in model.graph.input:
        if value.name in initializers or not value.type.HasField("tensor_type"):
            continue
        if not value.type.tensor_type.HasField("shape"):
            raise InputError(f"{label}: input {value.name!r} has no shape (unknown rank)")
        shape: list[int] = []
        for k, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value"):
                if dim.dim_value <= 0:
                    raise InputError(
                        f"{label}: input {value.name!r} dim {k} is {dim.dim_value}; "
                        "dims must be positive"
                    )
                shape.append(dim.dim_value)
                continue
            param = dim.dim_param if dim.HasField("dim_param") else ""
            known.add(param)
            size = int(dims.get(param, 1))
            if size <= 0:
                raise InputError(f"{label}: dim {param!r} must be positive, got {size}")
            shape.append(size)
        shapes[value.name] = tuple(shape)
    unknown = sorted(set(dims) - known)
    if unknown:
        names = ", ".join(sorted(p for p in known if p)) or "none"
        raise InputError(
            f"{label}: no input dim named {', '.join(unknown)} (symbolic dims: {names})"
        )
    return shapes


# Initializers up to this many elements keep their values for shape inference's data
# propagation (shape constants); larger ones are passed by type only, which keeps inference
# fast on models with hundreds of MB of weights.
_INFER_MAX_CONST = 1024


def _infer_shapes(
    model: onnx.ModelProto, input_shapes: Mapping[str, tuple[int, ...]]
) -> dict[str, tuple[int, ...]]:
    """Static shapes ONNX shape inference finds (a cross-check of the lowering's shapes)."""
    graph = model.graph
    inputs = []
    for value in graph.input:
        if value.name in input_shapes:
            elem = value.type.tensor_type.elem_type
            value = helper.make_tensor_value_info(value.name, elem, input_shapes[value.name])
        inputs.append(value)
    small = []
    for init in graph.initializer:
        if math.prod(init.dims) <= _INFER_MAX_CONST:
            small.append(init)
        else:
            inputs.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    light = helper.make_graph(list(graph.node), graph.name or "g", inputs, list(graph.output),
                              small)  # fmt: skip
    probe = helper.make_model(light, opset_imports=list(model.opset_import))
    probe.ir_version = model.ir_version
    try:
        inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - inference is only a cross-check
        return {}
    return _inferred_shapes(inferred)


def _value_dtype(value: onnx.ValueInfoProto, label: str) -> DType:
    elem = value.type.tensor_type.elem_type
    if elem not in _ELEM_TYPES:
        name = onnx.TensorProto.DataType.Name(elem) if elem else "unknown"
        raise InputError(f"{label}: input {value.name!r} has unsupported element type {name}")
    return _ELEM_TYPES[elem]


class _Importer:
    """One model's walk: folding and lowering share the constants and value maps."""

    def __init__(
        self,
        model: onnx.ModelProto,
        input_shapes: Mapping[str, tuple[int, ...]],
        inferred_shapes: Mapping[str, tuple[int, ...]],
        label: str,
        builder: CascadeBuilder,
    ) -> None:
        self.model = model
        self.label = label
        self.b = builder
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
        self.input_shapes = input_shapes
        self.inferred_shapes = inferred_shapes
        self.ctx = LoweringContext(builder, self.opset, label)
        graph = model.graph
        self.consumed = {name for n in graph.node for name in n.input} | {
            o.name for o in graph.output
        }

    def run(self) -> OnnxImport:
        graph = self.model.graph
        ctx = self.ctx
        for init in graph.initializer:
            ctx.constants[init.name] = numpy_helper.to_array(init)
        for value in graph.input:
            if value.name in ctx.constants:
                continue
            shape = self.input_shapes[value.name]
            dtype = _value_dtype(value, self.label)
            ctx.values[value.name] = self.b.tensor(value.name, shape, dtype, Role.INPUT)
        needed = _live_nodes(graph)
        for k, node in enumerate(graph.node):
            if k not in needed:
                continue
            if self._fold(node):
                continue
            self._lower(node)
        self._mark_outputs()
        cascade = self.b.build()
        return self._rename(cascade)

    # -- folding
    def _fold(self, node: onnx.NodeProto) -> bool:
        ctx = self.ctx
        if node.op_type in _NO_FOLD or node.domain not in ("", "ai.onnx"):
            return False
        if node.op_type in ("Shape", "Size") and node.input[0] in ctx.values:
            shape = self.b.shape(ctx.values[node.input[0]])
            if node.op_type == "Size":
                ctx.constants[node.output[0]] = np.array(int(np.prod(shape)), dtype=np.int64)
                return True
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            start, end = attrs.get("start", 0), attrs.get("end", None)
            ctx.constants[node.output[0]] = np.array(shape[start:end], dtype=np.int64)
            return True
        inputs = [name for name in node.input if name]
        if any(name not in ctx.constants for name in inputs):
            return False
        feeds = {name: ctx.constants[name] for name in inputs}
        check_memory(
            _fold_bytes(node, feeds, self.inferred_shapes),
            f"{self.label}: folding constant node {_node_label(node)}",
            FOLD_LIMIT_BYTES,
        )
        try:
            results = _evaluate(node, feeds, self.opset)
        except Exception as exc:  # noqa: BLE001 - the reference evaluator raises anything
            reason = " ".join(str(exc).split())[:200]
            raise InputError(
                f"{self.label}: cannot fold constant node {_node_label(node)} ({reason})"
            ) from None
        for out, value in zip(node.output, results, strict=False):
            if out:
                ctx.constants[out] = np.asarray(value)
        return True

    # -- lowering
    def _lower(self, node: onnx.NodeProto) -> None:
        ctx = self.ctx
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
        lowering = OPS.get(op)
        if lowering is None:
            raise InputError(
                f"{self.label}: unsupported op {op!r} at node {_node_label(node)} "
                "(codesign ops lists supported ops)"
            )
        try:
            outputs = lowering(self.b, node, ctx)
        except UnsupportedNode as exc:
            raise InputError(
                f"{self.label}: op {op!r} at node {_node_label(node)}: {exc}"
            ) from None
        except InputError as exc:
            raise InputError(f"{self.label}: node {_node_label(node)}: {exc}") from None
        except (ValueError, KeyError, IndexError) as exc:
            raise InputError(
                f"{self.label}: cannot lower {op!r} at node {_node_label(node)} ({exc})"
            ) from None
        for k, out in enumerate(node.output):
            if not out:
                continue
            if k >= len(outputs):
                if out in self.consumed:
                    raise InputError(
                        f"{self.label}: op {op!r} at node {_node_label(node)}: output {k} "
                        f"({out!r}) is not supported"
                    )
                continue
            ctx.values[out] = outputs[k]
            self._check_shape(node, out)

    def _check_shape(self, node: onnx.NodeProto, value: str) -> None:
        expected = self.inferred_shapes.get(value)
        got = self.b.shape(self.ctx.values[value])
        if expected is not None and tuple(expected) != tuple(got):
            raise InputError(
                f"{self.label}: node {_node_label(node)}: lowered shape {tuple(got)} of "
                f"{value!r} differs from ONNX shape inference {tuple(expected)}"
            )

    def _mark_outputs(self) -> None:
        """Graph outputs become OUTPUT tensors; a copy view where the value is also read
        elsewhere, is an input/weight, or is produced under another name."""
        graph = self.model.graph
        ctx = self.ctx
        read_by_nodes = {name for n in graph.node for name in n.input}
        seen: set[str] = set()
        for value in graph.output:
            try:
                tensor = ctx.tensor(value.name)
            except KeyError:
                raise InputError(
                    f"{self.label}: graph output {value.name!r} is not produced by any node"
                ) from None
            spec = self.b.spec(tensor)
            want = sanitize(value.name)
            needs_copy = (
                spec.role is not Role.INTERMEDIATE
                or value.name in read_by_nodes
                or tensor in seen
                or (tensor != want and self._name_taken(want))
            )
            seen.add(tensor)
            if not needs_copy:
                self.b.set_role(tensor, Role.OUTPUT)
                continue
            shape = spec.shape
            out = self.b.tensor(want, shape, spec.dtype, Role.OUTPUT)
            vs = iter_vars(len(shape))
            self.b.einsum(
                f"{want}_output", var_access(out, vs), var_access(tensor, vs),
                dict(zip(vs, shape, strict=True)), op="Identity",
            )  # fmt: skip
            ctx.values[value.name] = out

    def _name_taken(self, name: str) -> bool:
        try:
            self.b.spec(name)
        except KeyError:
            return False
        return True

    def _rename(self, cascade: Cascade) -> OnnxImport:
        """Give each lowered tensor its ONNX value's name where that name is free."""
        taken = {t.name for t in cascade.tensors}
        mapping: dict[str, str] = {}
        # graph outputs first: an aliased value (Identity) takes the output's name
        order = [o.name for o in self.model.graph.output] + list(self.ctx.values)
        for onnx_name in order:
            tensor = self.ctx.values[onnx_name]
            want = sanitize(onnx_name)
            if tensor == want or tensor in mapping or want in taken:
                continue
            spec = cascade.tensor(tensor) if cascade.has_tensor(tensor) else None
            if spec is None or spec.role is Role.WEIGHT:
                continue
            mapping[tensor] = want
            taken.discard(tensor)
            taken.add(want)
        if mapping:
            cascade = rename_tensors(cascade, mapping)
        names = {k: mapping.get(v, v) for k, v in self.ctx.values.items()}
        return OnnxImport(cascade, names)


def _fold_bytes(
    node: onnx.NodeProto, feeds: Mapping[str, np.ndarray], inferred: Mapping[str, tuple[int, ...]]
) -> float:
    """Estimated bytes of the values folding `node` creates, computed without creating them.

    The ops whose output size is set by input *values* are sized from those values; any other
    op from ONNX shape inference, else from its largest input (most ops do not grow data).
    """
    values = [feeds[name] for name in node.input if name]
    itemsize = max((v.dtype.itemsize for v in values), default=8)
    op = node.op_type
    with np.errstate(all="ignore"):
        if op == "ConstantOfShape" and values:
            dims = values[0].astype(np.float64).ravel()
            if np.any(dims < 0):
                raise InputError(f"ConstantOfShape {_node_label(node)}: negative shape {dims}")
            value = next((a.t for a in node.attribute if a.name == "value"), None)
            size = 4 if value is None else numpy_helper.to_array(value).dtype.itemsize
            return float(np.prod(dims)) * size
        if op == "Range" and len(values) == 3:
            start, limit, delta = (float(np.asarray(v).ravel()[0]) for v in values)
            if not all(math.isfinite(x) for x in (start, limit, delta)) or delta == 0:
                raise InputError(
                    f"Range {_node_label(node)}: start {start}, limit {limit}, delta {delta} "
                    "must be finite with a non-zero delta"
                )
            return max(math.ceil((limit - start) / delta), 0) * itemsize
        if op in ("Expand", "Tile") and len(values) == 2:
            shape = np.asarray(values[0].shape, dtype=np.float64)
            other = values[1].astype(np.float64).ravel()
            if op == "Tile" and len(other) == len(shape):
                return float(np.prod(shape * other)) * itemsize
            rank = max(len(shape), len(other))
            padded = [np.pad(x, (rank - len(x), 0), constant_values=1) for x in (shape, other)]
            return float(np.prod(np.maximum(*padded))) * itemsize
    shapes = [inferred[o] for o in node.output if o in inferred]
    if shapes:
        return sum(float(np.prod(s, dtype=np.float64)) for s in shapes) * itemsize
    return max((float(v.nbytes) for v in values), default=0.0)


def _node_label(node: onnx.NodeProto) -> str:
    if node.name:
        return repr(node.name)
    return f"{node.op_type} -> {node.output[0]!r}" if node.output else repr(node.op_type)


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    for value in list(model.graph.value_info) + list(model.graph.output):
        if not value.type.HasField("tensor_type"):
            continue
        tt = value.type.tensor_type
        if not tt.HasField("shape"):
            continue
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
        if all(d > 0 for d in dims):
            shapes[value.name] = tuple(dims)
    return shapes


def _live_nodes(graph: onnx.GraphProto) -> set[int]:
    """Positions of the nodes some graph output depends on."""
    nodes = list(graph.node)
    producer = {out: k for k, node in enumerate(nodes) for out in node.output if out}
    live: set[int] = set()
    stack = [o.name for o in graph.output]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        k = producer.get(name)
        if k is None or k in live:
            continue
        live.add(k)
        stack.extend(i for i in nodes[k].input if i)
    return live


def _evaluate(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: int) -> list:
    """Run one node on constant inputs with the ONNX reference evaluator."""
    from onnx.reference import ReferenceEvaluator

    inputs = [
        helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
        for k, v in feeds.items()
    ]
    outputs = [helper.make_value_info(o, onnx.TypeProto()) for o in node.output if o]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    results = ReferenceEvaluator(model).run(None, feeds)  # a list when output names are None
    return list(results)


# -- tensor renaming (a pure Cascade -> Cascade rewrite)
def rename_tensors(cascade: Cascade, mapping: Mapping[str, str]) -> Cascade:
    """`cascade` with tensors renamed by `mapping` (names not in it are kept)."""
    tensors = tuple(replace(t, name=mapping.get(t.name, t.name)) for t in cascade.tensors)
    einsums = tuple(_rename_einsum(e, mapping) for e in cascade.einsums)
    return Cascade(cascade.name, tensors, einsums)


def _rename_einsum(einsum: Einsum, mapping: Mapping[str, str]) -> Einsum:
    return replace(
        einsum,
        output=_rename_access(einsum.output, mapping),
        body=_rename_expr(einsum.body, mapping),
    )


def _rename_access(access: Access, mapping: Mapping[str, str]) -> Access:
    return Access(
        mapping.get(access.tensor, access.tensor),
        tuple(_rename_index(i, mapping) for i in access.indices),
    )


def _rename_index(index: IndexExpr, mapping: Mapping[str, str]) -> IndexExpr:
    if isinstance(index, Gathered):
        return Gathered(
            mapping.get(index.tensor, index.tensor),
            tuple(_rename_index(i, mapping) for i in index.indices),
        )
    return index  # affine and quasi-affine indices hold no tensor names


def _rename_expr(expr: Expr, mapping: Mapping[str, str]) -> Expr:
    return map_accesses(expr, lambda access: _rename_access(access, mapping))
