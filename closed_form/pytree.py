"""Immutable JAX pytrees: the plumbing :class:`~closed_form.Gaussian` and :class:`~closed_form.GaussianMixture` share.

A subclass names its array attributes in ``_leaves`` and its hashable static attributes (a schedule, say) in
``_static``; it is registered with JAX on definition, flattens to those arrays with the static values as auxiliary
data (so that ``jax.jit`` compiles once per static value and leaf shapes, not once per object), and is rebuilt from
them by :meth:`FrozenPytree.tree_unflatten` *without* running ``__init__``: inside ``jax.jit`` the leaves are tracers, whose values the input checks of ``__init__`` cannot read,
and every leaf was validated when the object was first built from user input.
"""

from __future__ import annotations

import jax


class FrozenPytree:
    """Base of catcomp's immutable pytrees; subclasses set ``_leaves`` (attribute names, in flattening order) and
    optionally ``_static`` (names of hashable attributes that are not arrays)."""

    _leaves: tuple[str, ...] = ()
    _static: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node_class(cls)

    def _set(self, *values):
        """Set the leaves in ``_leaves`` order, then the static attributes in ``_static`` order (the only way to
        write them: instances are otherwise immutable)."""
        names = self._leaves + self._static
        if len(values) != len(names):
            raise TypeError(f"{type(self).__name__} has attributes {names}, got {len(values)} values.")
        for name, value in zip(names, values):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def tree_flatten(self):
        static = tuple(getattr(self, name) for name in self._static) if self._static else None
        return tuple(getattr(self, name) for name in self._leaves), static

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj._set(*children, *(aux or ()))
        return obj


__all__ = ["FrozenPytree"]
