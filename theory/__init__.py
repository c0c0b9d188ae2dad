"""catcomp's theory: bounds and derivations stated as functions that return measured values beside their bounds.

May use :mod:`closed_form`; importing it switches JAX to float64.
"""

import jax

jax.config.update("jax_enable_x64", True)

# Exact laws: the Girsanov KL bound and the synchronous-coupling W2 bound of the reverse SDE.
from theory.coupling import CouplingW2Bound, synchronous_coupling_w2_bound  # noqa: E402
from theory.girsanov import GirsanovKLBound, girsanov_kl_bound  # noqa: E402

# Score-estimation error: change of measure, first-order sensitivity, and the two-point lower bound.
from theory.sensitivity import SensitivityBound, sensitivity_bound  # noqa: E402
from theory.transfer import TransferBound, transfer_bound  # noqa: E402
from theory.two_point import TwoPointBound, two_point_bound  # noqa: E402

# The closed forms derived by SymPy from their definitions (the subpackage itself imports no JAX).
from theory import derivations  # noqa: E402

__all__ = [
    "CouplingW2Bound",
    "GirsanovKLBound",
    "SensitivityBound",
    "TransferBound",
    "TwoPointBound",
    "derivations",
    "girsanov_kl_bound",
    "sensitivity_bound",
    "synchronous_coupling_w2_bound",
    "transfer_bound",
    "two_point_bound",
]
