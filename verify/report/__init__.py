"""The verification report: the experiment registry and catalog, the cell runner and cache, tables, figures, claims
and ``summary.md``, and the command line (``python -m verify``). Names experiments' compute functions by import
path, so nothing here runs an experiment until the report does."""
