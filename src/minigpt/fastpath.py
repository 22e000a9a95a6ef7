"""The per-token fast path: MiniGPT.forward for one new position per row, traced into one flat
function by torch.fx.

Generation runs the model once per character, on one row per story. There Python's cost of
calling some 50 small modules and looking up their weights is as large as the arithmetic itself
(bench/speed/generation.py). torch.fx runs forward() once on symbolic inputs and records every tensor
operation it performs: the same modules and the same code, written out as a flat list of calls
(print `decode_step(model).code` to read it). The weights become arguments, bound once to the
model's own parameters, so training them in place is seen by the traced function too.

What forward() decided from Python values while it was traced is fixed in the recording: eval
mode (no dropout), no attention weights returned, the fast attention with PyTorch's fused kernel,
and one new position per row (T = 1), with or without a per-row mask. `decode_step` returns None
when the model is not in that state, and the caller runs forward() itself.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable

import torch
import torch.fx

from .model import KVCache, MiniGPT


class _Inline(torch.fx.Tracer):
    """Trace through every module (PyTorch's own too) down to tensor operations."""

    def is_leaf_module(self, module, name) -> bool:
        return False


# Tracing takes ~0.1 s, so each model's step is kept (while the model lives) and traced again
# only when the model's parameters are other tensor objects than the ones it was traced with.
_traced: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decode_step(model: MiniGPT) -> Callable[[torch.Tensor, KVCache], torch.Tensor] | None:
    """A function (ids (B, 1), cache) -> logits (B, 1, V) computing model(ids, cache=cache),
    or None when forward() would take other paths than the traced one (see the docstring)."""
    hooked = any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())
    if (model.training or hooked or model.config.attention != "fast"
            or any(b.attn.kernel != "sdpa" for b in model.blocks)):
        return None
    key = tuple(map(id, model.parameters()))
    if model in _traced and _traced[model][0] == key:
        return _traced[model][1]
    step = _trace(model)
    if step is not None:
        _traced[model] = (key, step)
    return step


def _trace(model: MiniGPT):
    try:
        graph = _Inline().trace(model, concrete_args={"targets": None, "need_weights": False,
                                                      "states": None})
    except torch.fx.proxy.TraceError:  # forward() was changed into something fx cannot follow
        return None
    # Weights are read with get_attr nodes (attribute lookups on every call); make them
    # arguments instead, bound below to the parameters themselves.
    anchor = next(n for n in graph.nodes if n.op == "placeholder")  # ids
    tensors = []
    for node in list(graph.nodes):
        if node.op == "get_attr":
            tensor = functools.reduce(getattr, node.target.split("."), model)
            with graph.inserting_after(anchor):
                anchor = graph.placeholder(f"w{len(tensors)}")
            node.replace_all_uses_with(anchor)
            graph.erase_node(node)
            tensors.append(tensor)
    # Two simplifications of the recording, the same arithmetic: dropout in eval mode is the
    # identity, and three functional wrappers become the operations they call (their argument
    # checks cost more than the operation on one row).
    F = torch.nn.functional
    # fx checks on every call that `targets`, `need_weights` and `states` still have their traced
    # values; step() passes none of them, so the checks always hold: drop them too.
    checks = (torch._assert, torch.fx._symbolic_trace._assert_is_none)
    for node in reversed(list(graph.nodes)):
        if node.op == "call_function" and node.target in checks:
            inputs = [a for a in node.args if isinstance(a, torch.fx.Node) and a.op != "placeholder"]
            graph.erase_node(node)
            for a in inputs:
                if not a.users:
                    graph.erase_node(a)
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target is F.dropout and node.kwargs.get("training") is False:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
        elif node.target is F.layer_norm:
            x, shape = node.args[:2]
            node.target = torch.layer_norm
            node.args, node.kwargs = (x, shape, node.kwargs["weight"], node.kwargs["bias"],
                                      node.kwargs["eps"]), {}
        elif node.target is F.embedding and node.kwargs.get("max_norm") is None:
            node.target, node.args, node.kwargs = torch.embedding, (node.args[1], node.args[0]), {}
        elif node.target is F.relu and not node.kwargs.get("inplace"):
            node.target, node.kwargs = torch.relu, {}
    flat = torch.fx.GraphModule(torch.nn.Module(), graph)

    def step(ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        if ids.size(1) != 1:
            raise ValueError(f"the traced step feeds one position per row, got {ids.size(1)}")
        return flat.forward(ids, *tensors, cache=cache)[0]  # no module-call machinery

    step.code = flat.code
    return step
