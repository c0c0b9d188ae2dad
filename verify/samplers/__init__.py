"""The samplers: score adapters, the naive composed reverse SDE/ODE, Feynman–Kac corrector SMC, MCMC correctors,
resampling, and the noise and jit/sharding helpers they run on. May use :mod:`closed_form` and :mod:`theory`, never
:mod:`verify.experiments` or :mod:`verify.report` (``tests/test_layout.py`` checks)."""
