"""catcomp's verification layer: samplers, experiments and the report. May use :mod:`closed_form` and :mod:`theory`.

Importing it switches JAX to float64.
"""

import jax

jax.config.update("jax_enable_x64", True)
