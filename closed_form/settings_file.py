r"""Settings files: a user's compositions in TOML (stdlib :mod:`tomllib`), parsed into :class:`closed_form.Setting` s.

One file holds one or more ``[[setting]]`` tables. Each has a ``name``, the composition ``weights`` (one per source)
and its ``[[setting.source]]`` tables in order; optionally ``labels`` (or a ``label`` in each source),
``factorized`` and ``in_distribution`` (true/false). A source is

* a Gaussian: ``mean`` and one of ``cov`` (a d × d matrix), ``variances`` (its diagonal) or ``variance`` (a number:
  ``variance · I``);
* a Gaussian mixture: ``weights``, ``means`` (one row per component) and one of ``covs`` (one matrix per component),
  ``variances`` (one diagonal per component) or ``std`` (one standard deviation shared by every component and
  direction).

Example (:data:`EXAMPLE`, the file ``closed_form/example_settings.toml`` shipped with the package)::

    [[setting]]
    name = "A_times_B_over_base"
    weights = [1, 1, -1]
    labels = ["A", "B", "base"]

    [[setting.source]]
    mean = [2, 0, 0]
    variances = [0.5, 2, 1]

    ...

Every error is a :class:`SettingsFileError` that names the key (``setting[0].source[1].cov``) and says what would be
valid; errors of the composition itself (an improper one, covariances that are not positive definite) are passed on
with the setting they belong to.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from closed_form.errors import CatcompError
from closed_form.gaussian import Gaussian
from closed_form.mixture import GaussianMixture
from closed_form.settings import Setting

#: The example settings file shipped with catcomp (``closed_form/example_settings.toml``): the 3-D composition
#: ``Q ∝ A·B/base`` and a 2-D Gaussian-mixture composition; :data:`EXAMPLE` is its text.
EXAMPLE_PATH = Path(__file__).with_name("example_settings.toml")
EXAMPLE = EXAMPLE_PATH.read_text(encoding="utf-8")

_SETTING_KEYS = ("name", "weights", "source", "labels", "factorized", "in_distribution")
_GAUSSIAN_KEYS = ("label", "mean", "cov", "variances", "variance")
_MIXTURE_KEYS = ("label", "weights", "means", "covs", "variances", "std")


class SettingsFileError(CatcompError):
    """A settings file that cannot be read as compositions; the message names the key and what would be valid."""


def load_settings(path) -> list[Setting]:
    """The settings of the TOML file at ``path``, in file order.

    Raises
    ------
    SettingsFileError
        For a missing file, invalid TOML or an invalid setting (the key is named).
    """
    path = Path(path)
    if not path.is_file():
        raise SettingsFileError(f"settings file {str(path)!r} does not exist; pass the path of a TOML file "
                                "(closed_form.settings_file.EXAMPLE shows the format).")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise SettingsFileError(f"{path}: not valid TOML ({err}).") from None
    return parse_settings(data, where=str(path))


def loads_settings(text: str, where: str = "<string>") -> list[Setting]:
    """:func:`load_settings` for TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise SettingsFileError(f"{where}: not valid TOML ({err}).") from None
    return parse_settings(data, where=where)


def parse_settings(data: Mapping, where: str = "<settings>") -> list[Setting]:
    """The settings described by the parsed TOML mapping ``data`` (the format of the module doc)."""
    if not isinstance(data, Mapping):
        raise SettingsFileError(f"{where}: expected a TOML table at the top, got {type(data).__name__}.")
    unknown = sorted(set(data) - {"setting"})
    if unknown:
        raise SettingsFileError(f"{where}: unknown top-level key(s) {unknown}; a settings file holds [[setting]] "
                                "tables only.")
    tables = data.get("setting")
    if not isinstance(tables, list) or not tables:
        raise SettingsFileError(f"{where}: no [[setting]] table; write at least one, with name, weights and its "
                                "[[setting.source]] tables.")
    settings = [_setting(table, f"setting[{i}]", where) for i, table in enumerate(tables)]
    names = [s.name for s in settings]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise SettingsFileError(f"{where}: setting name(s) {repeated} appear more than once; each setting needs its "
                                "own name (it labels files, tables and figures).")
    return settings


def _fail(where, key, message):
    raise SettingsFileError(f"{where}: {key}: {message}")


def _array(value, where, key, ndim, what):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        _fail(where, key, f"expected {what} of numbers, got {value!r}.")
    if arr.ndim != ndim:
        _fail(where, key, f"expected {what}, got an array of shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        _fail(where, key, f"every entry must be a finite number, got {value!r}.")
    return arr


def _only(table, allowed, where, key, kind):
    unknown = sorted(set(table) - set(allowed))
    if unknown:
        _fail(where, key, f"unknown key(s) {unknown} in a {kind}; valid keys are {list(allowed)}.")


def _one_of(table, keys, where, key, kind):
    present = [k for k in keys if k in table]
    if len(present) != 1:
        _fail(where, key, f"a {kind} needs exactly one of {list(keys)}, got {present or 'none'}.")
    return present[0]


def _gaussian(table, where, key):
    _only(table, _GAUSSIAN_KEYS, where, key, "Gaussian source")
    mean = _array(table["mean"], where, f"{key}.mean", 1, "a vector")
    d = mean.shape[0]
    which = _one_of(table, ("cov", "variances", "variance"), where, key, "Gaussian source (besides mean)")
    if which == "cov":
        cov = _array(table["cov"], where, f"{key}.cov", 2, f"a {d} × {d} matrix (a list of {d} rows)")
    elif which == "variances":
        cov = np.diag(_array(table["variances"], where, f"{key}.variances", 1, f"a list of {d} variances"))
    else:
        v = _array(table["variance"], where, f"{key}.variance", 0, "one number")
        cov = float(v) * np.eye(d)
    if cov.shape != (d, d):
        _fail(where, f"{key}.{which}", f"the mean has dimension {d}, so the covariance must be {d} × {d}; got shape "
                                       f"{cov.shape}.")
    return Gaussian(mean, cov)


def _mixture(table, where, key):
    _only(table, _MIXTURE_KEYS, where, key, "Gaussian-mixture source")
    for k in ("weights", "means"):
        if k not in table:
            _fail(where, key, f"a Gaussian-mixture source needs {k!r} (valid keys: {list(_MIXTURE_KEYS)}).")
    weights = _array(table["weights"], where, f"{key}.weights", 1, "a list of component weights")
    means = _array(table["means"], where, f"{key}.means", 2, "a list of component means (one row each)")
    n, d = means.shape
    if weights.shape[0] != n:
        _fail(where, f"{key}.weights", f"{weights.shape[0]} weights for {n} component means; give one per "
                                       "component.")
    which = _one_of(table, ("covs", "variances", "std"), where, key, "Gaussian-mixture source (besides weights, "
                                                                     "means)")
    if which == "covs":
        covs = _array(table["covs"], where, f"{key}.covs", 3, f"a list of {n} matrices, each {d} × {d}")
        if covs.shape != (n, d, d):
            _fail(where, f"{key}.covs", f"expected {n} matrices of shape {d} × {d}, got shape {covs.shape}.")
    elif which == "variances":
        var = _array(table["variances"], where, f"{key}.variances", 2, f"a list of {n} diagonals of length {d}")
        if var.shape != (n, d):
            _fail(where, f"{key}.variances", f"expected {n} rows of {d} variances, got shape {var.shape}.")
        covs = np.stack([np.diag(v) for v in var])
    else:
        std = float(_array(table["std"], where, f"{key}.std", 0, "one number"))
        if std <= 0:
            _fail(where, f"{key}.std", f"a standard deviation must be positive, got {std}.")
        covs = np.stack([std**2 * np.eye(d)] * n)
    return GaussianMixture(weights, means, covs)


def _source(table, where, key):
    if not isinstance(table, Mapping):
        _fail(where, key, f"each source is a [[setting.source]] table, got {type(table).__name__}.")
    if "mean" in table:
        return _gaussian(table, where, key)
    if "means" in table:
        return _mixture(table, where, key)
    _fail(where, key, f"a source needs 'mean' (a Gaussian: valid keys {list(_GAUSSIAN_KEYS)}) or 'means' (a "
                      f"Gaussian mixture: valid keys {list(_MIXTURE_KEYS)}); got keys {sorted(table)}.")


def _setting(table, key, where) -> Setting:
    if not isinstance(table, Mapping):
        _fail(where, key, f"expected a [[setting]] table, got {type(table).__name__}.")
    _only(table, _SETTING_KEYS, where, key, "[[setting]] table")
    for k in ("name", "weights", "source"):
        if k not in table:
            _fail(where, key, f"missing key {k!r}; a setting needs name, weights and [[setting.source]] tables "
                              f"(valid keys: {list(_SETTING_KEYS)}).")
    name = table["name"]
    if not isinstance(name, str):
        _fail(where, f"{key}.name", f"expected a string, got {name!r}.")
    sources_t = table["source"]
    if not isinstance(sources_t, list) or not sources_t:
        _fail(where, f"{key}.source", "expected one or more [[setting.source]] tables.")
    weights = _array(table["weights"], where, f"{key}.weights", 1, "a list of composition weights")
    if weights.shape[0] != len(sources_t):
        _fail(where, f"{key}.weights", f"{weights.shape[0]} weights for {len(sources_t)} sources; give one weight per "
                                       "[[setting.source]] table, in order.")
    try:
        sources = [_source(s, where, f"{key}.source[{j}]") for j, s in enumerate(sources_t)]
    except SettingsFileError:
        raise
    except CatcompError as err:  # a covariance that is not positive definite, mixture weights, …
        raise SettingsFileError(f"{where}: {key} ({name!r}): {err}") from err
    per_source = [s.get("label") for s in sources_t]
    labels = table.get("labels")
    if labels is not None and any(lab is not None for lab in per_source):
        _fail(where, f"{key}.labels", "give the labels either as the setting's 'labels' list or as a 'label' in each "
                                      "source, not both.")
    if labels is None and any(lab is not None for lab in per_source):
        if any(lab is None for lab in per_source):
            _fail(where, f"{key}.source", "some sources have a 'label' and others not; label every source or none.")
        labels = per_source
    if labels is not None and (not isinstance(labels, list) or not all(isinstance(x, str) for x in labels)):
        _fail(where, f"{key}.labels", f"expected a list of {len(sources)} strings, got {labels!r}.")
    flags = {}
    for flag in ("factorized", "in_distribution"):
        value = table.get(flag)
        if value is not None and not isinstance(value, bool):
            _fail(where, f"{key}.{flag}", f"expected true or false (or leave it out when unknown), got {value!r}.")
        flags[flag] = value
    try:
        return Setting(name, sources, weights, labels, **flags)
    except CatcompError as err:
        raise SettingsFileError(f"{where}: {key} ({name!r}): {err}") from err


__all__ = ["EXAMPLE", "EXAMPLE_PATH", "SettingsFileError", "load_settings", "loads_settings", "parse_settings"]
