"""Finding user-named tensors in a TensorFlow GraphDef: exact names, scope suffixes, layer scopes."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from functions.converter.errors import ConversionFailed, Reason, listing

PLACEHOLDER_OPS = {"Placeholder", "PlaceholderV2", "PlaceholderWithDefault"}
# Ops that name no computed tensor a user could want, and never are a model output.
_NOT_OUTPUTS = {"NoOp", "Const", "Assert", "SaveV2", "RestoreV2", "VarHandleOp", "VariableV2", "Assign"}
# Ops that pass a tensor through unchanged: their ends are the same tensor for a user.
_PASS_THROUGH = {"Identity", "IdentityN", "StopGradient", "Snapshot"}
# Nodes TensorFlow adds when inlining functions: never what a user means by a name.
_INLINING_PREFIX = "Func/"


def tensor_name(name: str) -> str:
    """`node` → `node:0`; `node:1` stays."""
    node, _, port = name.rpartition(":")
    if node and port.isdigit():
        return name
    return f"{name}:0"


def split_tensor(name: str) -> tuple[str, int]:
    node, _, port = name.rpartition(":")
    if node and port.isdigit():
        return node, int(port)
    return name, 0


def _keras3_scope(name: str) -> str:
    """Keras 3 traces each layer under `<layer>_1`: `conv_feat/Relu` is `conv_feat_1/Relu` there."""
    parts = name.split("/")
    if len(parts) == 1:
        return f"{name}_1"
    return "/".join([*(f"{part}_1" for part in parts[:-1]), parts[-1]])


def _keras_layer(scope: str) -> str:
    """The Keras layer a Keras 3 scope stands for: `conv_feat_1` → `conv_feat`."""
    return scope[:-2] if scope.endswith("_1") and len(scope) > 2 else scope


def keras_layer_of(node_name: str) -> str | None:
    """The Keras layer a graph node belongs to, by its scope (`…/stage_1_gelu_1/Gelu/Erfc` → `stage_1_gelu`)."""
    parts = [part for part in node_name.split("/")[:-1] if part and not part.startswith("StatefulPartitionedCall")]
    keras3 = [part for part in parts if part.endswith("_1")]
    if keras3:
        return _keras_layer(keras3[-1])
    return parts[-1] if parts else None


class GraphIndex:
    """Read-only index of a GraphDef's nodes, consumers and pass-through chains."""

    def __init__(self, graph_def: Any) -> None:
        self.nodes = {node.name: node for node in graph_def.node}
        self.consumers: dict[str, set[str]] = defaultdict(set)
        self.consumed_outputs: dict[str, set[str]] = defaultdict(set)  # node → its tensors that feed others
        for node in graph_def.node:
            for source in node.input:
                if source.startswith("^"):
                    continue
                tensor = tensor_name(source)
                self.consumers[tensor].add(node.name)
                self.consumed_outputs[split_tensor(tensor)[0]].add(tensor)

    def has_tensor(self, name: str) -> bool:
        return split_tensor(name)[0] in self.nodes

    def op(self, name: str) -> str:
        return self.nodes[split_tensor(name)[0]].op

    def placeholders(self) -> list[str]:
        return [f"{name}:0" for name, node in self.nodes.items() if node.op in PLACEHOLDER_OPS]

    def sinks(self) -> list[str]:
        """Tensors no node consumes: a graph's outputs when nobody says otherwise."""
        found = []
        for name, node in self.nodes.items():
            if node.op in _NOT_OUTPUTS or node.op in PLACEHOLDER_OPS or name.startswith(_INLINING_PREFIX):
                continue
            candidate = f"{name}:0"
            if not self.consumers.get(candidate):
                found.append(candidate)
        return found

    def same_tensor(self, name: str) -> set[str]:
        """Tensors equal to `name` through Identity-like chains, in both directions."""
        seen = {tensor_name(name)}
        frontier = list(seen)
        while frontier:
            current = frontier.pop()
            node_name, port = split_tensor(current)
            node = self.nodes.get(node_name)
            linked: list[str] = []
            if node is not None and node.op in _PASS_THROUGH:
                data_inputs = [source for source in node.input if not source.startswith("^")]
                if port < len(data_inputs):
                    linked.append(tensor_name(data_inputs[port]))
            for consumer in self.consumers.get(current, ()):
                consumer_node = self.nodes[consumer]
                if consumer_node.op in _PASS_THROUGH:
                    data_inputs = [tensor_name(s) for s in consumer_node.input if not s.startswith("^")]
                    linked.extend(f"{consumer}:{index}" for index, s in enumerate(data_inputs) if s == current)
            for item in linked:
                if item not in seen:
                    seen.add(item)
                    frontier.append(item)
        return seen

    def find(self, user_name: str, *, keras3: bool = True) -> str | None:
        """The tensor a user means by `user_name`, or None.

        Tried in order: the exact tensor/node name; a unique node whose name ends with it at a
        scope boundary (`dense/BiasAdd` finds `StatefulPartitionedCall/model/dense/BiasAdd`);
        a scope (a Keras layer or `tf.name_scope`) with exactly one tensor leaving it; failing those,
        the same under Keras 3's layer scopes (`conv_feat` is traced as `conv_feat_1`).
        """
        node_name, port = split_tensor(user_name)
        if node_name in self.nodes:
            return f"{node_name}:{port}"
        suffix_matches = [
            name for name in self.nodes if name.endswith("/" + node_name) and not name.startswith(_INLINING_PREFIX)
        ]
        if len(suffix_matches) == 1:
            return f"{suffix_matches[0]}:{port}"
        if len(suffix_matches) > 1:
            raise ConversionFailed(
                Reason.UNKNOWN_TENSOR,
                f"The tensor name {user_name!r} is ambiguous in the graph: it matches "
                f"{listing(suffix_matches, 10)}; use the full name.",
                {"tensor": user_name, "candidates": suffix_matches[:50]},
            )
        if ":" not in user_name:
            found = self._scope_output(node_name)
            if found is not None:
                return found
        if keras3 and not self._has_scope(node_name):
            return self.find(_keras3_scope(node_name) + user_name[len(node_name) :], keras3=False)
        return None

    def _has_scope(self, scope: str) -> bool:
        """Whether computed nodes live under `scope` (frozen variables keep their names: not them)."""
        padded_scope = "/" + scope + "/"
        return any(
            ("/" + name + "/").find(padded_scope) >= 0
            for name, node in self.nodes.items()
            if node.op not in _NOT_OUTPUTS and not name.startswith(_INLINING_PREFIX)
        )

    def _scope_output(self, scope: str) -> str | None:
        prefixes = set()
        for name, node in self.nodes.items():
            # Frozen variables keep their own names (`hidden/kernel`): constants do not make a scope.
            if name.startswith(_INLINING_PREFIX) or node.op in _NOT_OUTPUTS:
                continue
            padded = "/" + name + "/"
            index = padded.find("/" + scope + "/")
            if index >= 0:
                prefixes.add(padded[1 : index + len(scope) + 1] + "/")
        if len(prefixes) != 1:
            return None
        prefix = next(iter(prefixes))
        leaving = []
        for name, node in self.nodes.items():
            if not name.startswith(prefix) or node.op in _NOT_OUTPUTS:
                continue
            produced = self.consumed_outputs.get(name)
            if not produced:
                leaving.append(f"{name}:0")  # the scope's output may be the graph's end
                continue
            for candidate in produced:
                if any(not consumer.startswith(prefix) for consumer in self.consumers[candidate]):
                    leaving.append(candidate)
        leaving = sorted(set(leaving))
        return leaving[0] if len(leaving) == 1 else None

    def short_names(self, name: str) -> list[str]:
        """Shorter names that find exactly `name`: scope suffixes and the enclosing layer scopes.

        `StatefulPartitionedCall/model/hidden/Relu:0` is also `model/hidden/Relu:0`,
        `hidden/Relu:0` and, when it is the only tensor leaving the scope, `hidden`.
        """
        node_name, port = split_tensor(name)
        parts = node_name.split("/")
        found = []
        for start in range(1, len(parts)):
            suffix = "/".join(parts[start:])
            try:
                if self.find(f"{suffix}:{port}") == f"{node_name}:{port}":
                    found.append(f"{suffix}:{port}")
            except ConversionFailed:
                continue
        for scope in parts[:-1]:
            if scope and self._scope_output(scope) == f"{node_name}:{port}":
                found.append(scope)
                layer = _keras_layer(scope)
                if layer != scope and self.find(layer) == f"{node_name}:{port}":
                    found.append(layer)
        return found

    def upstream_placeholders(self, outputs: Iterable[str], cuts: Iterable[str]) -> list[str]:
        """Placeholders the outputs still depend on once the graph is cut at `cuts`."""
        cut_nodes = {split_tensor(name)[0] for name in cuts}
        seen: set[str] = set()
        stack = [split_tensor(name)[0] for name in outputs]
        found = []
        while stack:
            name = stack.pop()
            if name in seen or name in cut_nodes or name not in self.nodes:
                continue
            seen.add(name)
            node = self.nodes[name]
            if node.op in PLACEHOLDER_OPS:
                found.append(f"{name}:0")
                continue
            stack.extend(source.lstrip("^").rpartition(":")[0] or source.lstrip("^") for source in node.input)
        return sorted(found)

    def example_names(self, limit: int = 20) -> list[str]:
        """A few computed tensors, from the end of the graph, to show in an error message."""
        names = [
            name
            for name, node in self.nodes.items()
            if node.op not in _NOT_OUTPUTS and not name.startswith(_INLINING_PREFIX) and node.op not in _PASS_THROUGH
        ]
        return names[-limit:]
