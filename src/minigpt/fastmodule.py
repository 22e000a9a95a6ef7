"""nn.Module with cheaper calls, for a model that generation runs once per character.

Writing one character runs about 50 small modules, each on a single row, and there PyTorch's
general machinery costs as much as the arithmetic: every call checks eight kinds of hooks before
it reaches forward(), and every `self.weight` or `self.ln1` is found by nn.Module.__getattr__
only after an ordinary attribute lookup has failed. `Fast` keeps nn.Module's behaviour and takes
two shortcuts (measured in docs/performance.md: together ~25% of a generation step):

- calling a module that has no hooks (and while no global hooks exist) runs forward() directly;
  with any hook registered, PyTorch's own call runs, so hooks behave as always;
- parameters, buffers and submodules are also stored as ordinary attributes, so reading one is a
  plain dictionary lookup; every way nn.Module has of changing them updates that copy too.

Mix it in front of an nn.Module class: `class Block(Fast, nn.Module)`.
"""

from __future__ import annotations

import torch.nn as nn
from torch.nn.modules import module as _torch_module

_TABLES = ("_parameters", "_buffers", "_modules")


# PyTorch's global hook tables (module.register_module_forward_hook & co.), changed in place.
_GLOBAL_HOOKS = (_torch_module._global_forward_hooks, _torch_module._global_forward_pre_hooks,
                 _torch_module._global_backward_hooks, _torch_module._global_backward_pre_hooks)


class Fast:
    def __call__(self, *args, **kwargs):
        if (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
                or self._backward_pre_hooks or any(_GLOBAL_HOOKS)):
            return nn.Module.__call__(self, *args, **kwargs)
        return self.forward(*args, **kwargs)

    def _mirror(self, name: str) -> None:
        """Copy `name` from nn.Module's tables into the instance dictionary (or drop the copy)."""
        d = self.__dict__
        for table in _TABLES:
            entries = d.get(table)
            if entries is not None and name in entries:
                d[name] = entries[name]
                return

    def _mirror_all(self) -> None:
        for table in _TABLES:
            for name in self.__dict__.get(table, {}):
                self._mirror(name)

    def __setattr__(self, name, value):
        super().__setattr__(name, value)
        self._mirror(name)

    def __delattr__(self, name):
        in_tables = any(name in self.__dict__.get(t, {}) for t in _TABLES)
        super().__delattr__(name)
        if in_tables:
            self.__dict__.pop(name, None)

    def register_parameter(self, name, param):
        super().register_parameter(name, param)
        self._mirror(name)

    def register_buffer(self, name, tensor, persistent=True):
        super().register_buffer(name, tensor, persistent)
        self._mirror(name)

    def add_module(self, name, module):
        super().add_module(name, module)
        self._mirror(name)

    register_module = add_module

    def _apply(self, fn, recurse=True):
        out = super()._apply(fn, recurse)  # may put new Parameter objects in the tables
        self._mirror_all()
        return out

    def __setstate__(self, state):
        super().__setstate__(state)
        self._mirror_all()
