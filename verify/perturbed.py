r"""Perturbed score functions for the samplers: ``ŝ_i(x, t) = s_i(x, t) + δ_i(x, t)``.

:class:`PerturbedScore` wraps a score function (a pytree such as :class:`verify.scores.GaussianScore`) and an error
model of :mod:`closed_form.perturbations`; it is itself a pytree whose error is a static (hashable) field, so the
samplers compile it like any other score function.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import jax

from closed_form.errors import ShapeMismatchError
from verify.scores import source_scores


@partial(jax.tree_util.register_dataclass, data_fields=["base"], meta_fields=["error"])
@dataclasses.dataclass(frozen=True, eq=False)
class PerturbedScore:
    """``base(x, t) + error.delta(x, t)``; ``error=None`` leaves ``base`` unchanged."""

    base: object
    error: object

    @property
    def dim(self) -> int:
        return self.base.dim

    def __call__(self, x, t):
        out = self.base(x, t)
        return out if self.error is None else out + self.error.delta(x, t)

    def __hash__(self):  # the error model is compared by identity
        return id(self)


def perturbed_scores(composition, schedule, errors) -> tuple:
    """The exact source scores of ``composition`` with ``errors[i]`` (an error model or ``None``) added to source
    ``i``'s score. A :class:`~closed_form.perturbations.MixtureMisspecificationError` is replaced by what it equals,
    the exact score of its misspecified mixture (one mixture-score evaluation instead of three)."""
    from closed_form.perturbations import MixtureMisspecificationError
    from verify.scores import exact_score

    errors = tuple(errors)
    if len(errors) != len(composition.sources):
        raise ShapeMismatchError(
            f"got {len(errors)} error model(s) for {len(composition.sources)} sources; pass one per source (None for "
            "an exact score)."
        )
    return tuple(exact_score(e.fitted, schedule) if isinstance(e, MixtureMisspecificationError) else PerturbedScore(s, e)
                 for s, e in zip(source_scores(composition, schedule), errors))
