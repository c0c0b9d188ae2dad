"""Immutable JAX pytrees: the plumbing :class:`~closed_form.Gaussian` and :class:`~closed_form.GaussianMixture` share.

A subclass names its array attributes in ``_leaves``; it is registered with JAX on definition, flattens to those
arrays (no static data), and is rebuilt from them by :meth:`FrozenPytree.tree_unflatten` *without* running
``__init__``: inside ``jax.jit`` the leaves are tracers, whose values the input checks of ``__init__`` cannot read,
and every leaf was validated when the object was first built from user input.
"""

from __future__ import annotations

import jax


class FrozenPytree:
    """Base of catcomp's immutable pytrees; subclasses set ``_leaves`` (attribute names, in flattening order)."""

    _leaves: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        jax.tree_util.register_pytree_node_class(cls)

    def _set(self, *leaves):
        """Set the leaves in ``_leaves`` order (the only way to write them: instances are otherwise immutable)."""
        if len(leaves) != len(self._leaves):
            raise TypeError(f"{type(self).__name__} has leaves {self._leaves}, got {len(leaves)} values.")
        for name, value in zip(self._leaves, leaves):
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def tree_flatten(self):
        return tuple(getattr(self, name) for name in self._leaves), None

    @classmethod
    def tree_unflatten(cls, aux, children):
        obj = object.__new__(cls)
        obj._set(*children)
        return obj


__all__ = ["FrozenPytree"]
