"""Exceptions raised by catcomp for invalid input.

Every exception is a subclass of :class:`CatcompError`, itself a :class:`ValueError`, so callers may catch either the
specific type or ``ValueError``. Messages say what was wrong and what would be valid.
"""

from __future__ import annotations


class CatcompError(ValueError):
    """Base class of catcomp's input errors."""


class NotPositiveDefiniteError(CatcompError):
    """A covariance (or precision) matrix is not symmetric positive definite."""


class ImproperCompositionError(CatcompError):
    """A geometric composition ``Q ∝ Π_i P_i^{w_i}`` is not a normalizable density.

    For Gaussian sources this means the combined precision ``Σ_i w_i Σ_i⁻¹`` is not positive definite; the message
    names the offending eigenvalue and its direction.
    """


class InvalidWeightsError(CatcompError):
    """Mixture weights that are negative, non-finite or do not sum to one; or composition weights of the wrong kind."""


class ShapeMismatchError(CatcompError):
    """Arrays whose shapes do not fit together (e.g. a mean of dimension 2 with a 3×3 covariance)."""


class NotGaussianSettingError(CatcompError):
    """An operation that needs Gaussian sources (closed-form laws, amplification eigenvalues) was given a setting
    with a Gaussian-mixture source; the message names the operation and the setting."""


class NonFiniteInputError(CatcompError):
    """An input array holds NaN or ±inf."""


class InvalidTimeError(CatcompError):
    """A diffusion time outside the schedule's domain ``[0, T]``."""


class NoClosedFormError(CatcompError):
    """The requested exact quantity has no closed form for this object (e.g. the target of a mixture composition
    with a negative weight)."""


class NotCodiagonalizableError(CatcompError):
    """Matrices that were required to share one orthonormal eigenbasis do not (e.g. source covariances that do not
    commute, where a per-eigen-direction computation was asked for)."""


class WeightsNotIntegrableError(CatcompError):
    """A Feynman–Kac weight ``exp(h·g)`` with ``g`` quadratic in ``x`` is not integrable against the particle law:
    the weighted measure's precision ``Λ`` (``P⁻¹ + h G`` in discrete time, the solution of its Riccati equation in
    continuous time) has a non-positive eigenvalue, so the weights have unbounded moments and the weighted particle
    measure has infinite mass. ``t`` is the diffusion time, ``direction`` the unit eigenvector of ``Λ`` along which
    the weighted density stops decaying, ``eigenvalue`` that eigenvalue (``None`` where not known)."""

    def __init__(self, message: str, *, t=None, direction=None, eigenvalue=None):
        super().__init__(message)
        self.t, self.direction, self.eigenvalue = t, direction, eigenvalue


class QuadratureNotConvergedError(CatcompError):
    """A quadrature whose estimate changed by more than its tolerance when its number of nodes was doubled; the
    message gives both estimates (pass more nodes)."""
