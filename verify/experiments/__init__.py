"""The report's experiments: one module per registered experiment (a compute function returning a tidy DataFrame),
plus the sample metrics and error models they share. May use :mod:`verify.samplers`, never :mod:`verify.report`
(``tests/test_layout.py`` checks)."""
