"""catcomp's theory: bounds and derivations stated as functions that return measured values beside their bounds.

May use :mod:`closed_form`; importing it switches JAX to float64.
"""

import jax

jax.config.update("jax_enable_x64", True)
