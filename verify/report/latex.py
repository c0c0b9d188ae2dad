r"""Text as LaTeX a researcher can paste: symbols in math mode, code in typewriter, specials escaped.

The report's captions, headers and claim statements are written in plain text with Unicode symbols (``λ_max``,
``Q_t``, ``P_a1``, ``KL(Q‖Q̂)``, ``max_i log(1 + χ²)``). :func:`latex_text` turns them into LaTeX that compiles with
``pdflatex`` and the packages of :data:`PREAMBLE` and prints them as a paper would:

* a *symbol token* — one letter (Latin or Greek, possibly accented or primed) or an operator name (``max``,
  ``min``, ``sup``, ``inf``, ``log``, ``exp``) followed by a subscript and/or a superscript written with ``_`` / ``^``
  — is set in math: ``λ_max`` → ``$\lambda_{\max}$``, ``P_a1`` → ``$P_{a_1}$``, ``q^i_t`` → ``$q^{i}_{t}$``,
  ``t_min`` → ``$t_{\min}$``, ``n_steps`` → ``$n_{\mathrm{steps}}$``;
* a snake_case identifier (several letters before the underscore, or more than one subscript: ``fkc_limit_law``,
  ``log_z_closed_form``) stays text with its underscores escaped;
* text between backticks is code: ``\texttt{…}``; a double hyphen (``--size``) keeps both hyphens instead of
  becoming an en dash;
* other Unicode symbols (Greek letters, ``‖``, ``≤``, ``∞``, superscript and subscript digits, combining accents)
  become ``\ensuremath{…}``; LaTeX specials are escaped.

:func:`fit_to_width` wraps a ``tabular`` so that it is scaled down to the text width only when it is wider (the
stated rule for wide tables: never enlarged, shrunk to ``\linewidth`` otherwise; it needs ``graphicx``).
"""

from __future__ import annotations

import re
import unicodedata

#: The packages every generated table and the report document need.
PREAMBLE = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{graphicx}\n\\usepackage{amsmath}\n"


class LatexError(ValueError):
    """Text that cannot be written as LaTeX (a character with no mapping, an accent on nothing)."""


_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}",
    "|": r"\ensuremath{|}",
}

_GREEK = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\varepsilon", "η": r"\eta",
    "θ": r"\theta", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "π": r"\pi", "ρ": r"\rho",
    "σ": r"\sigma", "τ": r"\tau", "φ": r"\varphi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega",
    "Γ": r"\Gamma", "Δ": r"\Delta", "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi", "Σ": r"\Sigma", "Π": r"\Pi",
    "Φ": r"\Phi", "Ψ": r"\Psi", "Ω": r"\Omega", "ζ": r"\zeta", "ξ": r"\xi", "ϕ": r"\phi",
}
_MATH_UNICODE = {
    **_GREEK,
    **{sup: f"^{{{d}}}" for d, sup in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")}, "⁻": r"^{-}", "⁺": r"^{+}", "ᵀ": r"^{\top}",
    "½": r"\frac{1}{2}",
    **{sub: f"_{{{d}}}" for d, sub in enumerate("₀₁₂₃₄₅₆₇₈₉")}, "₊": r"_{+}", "₋": r"_{-}", "ᵢ": r"_{i}",
    "ₜ": r"_{t}",
    "‖": r"\|", "·": r"\cdot", "×": r"\times", "±": r"\pm", "≤": r"\leq", "≥": r"\geq", "≠": r"\neq",
    "≈": r"\approx", "≲": r"\stackrel{<}{\sim}", "→": r"\to", "∞": r"\infty", "∑": r"\sum", "√": r"\surd", "−": r"-",
    "∈": r"\in", "∝": r"\propto", "∇": r"\nabla", "∫": r"\int", "ℓ": r"\ell", "′": r"'",
}
_COMBINING = {"\u0302": r"\hat", "\u0303": r"\tilde", "\u0304": r"\bar"}
_TEXT_UNICODE = {"–": "--", "—": "---", "’": "'", "‘": "`", "“": "``", "”": "''", "…": r"\ldots{}", "\u00a0": "~"}
_OPERATORS = ("max", "min", "sup", "inf", "log", "exp")
#: Multi-letter names of quantities that take scripts as one symbol (``rESS_i``, ``rESS^(−1/2)``).
_NAMED = ("rESS", "ESS")
_SUBSCRIPTS = {sub: str(d) for d, sub in enumerate("₀₁₂₃₄₅₆₇₈₉")} | {"₊": "+", "₋": "-", "ᵢ": "i", "ₜ": "t"}
_SUPERSCRIPTS = {sup: str(d) for d, sup in enumerate("⁰¹²³⁴⁵⁶⁷⁸⁹")} | {"⁻": "-", "⁺": "+", "ᵀ": r"\top"}

_LETTER = "A-Za-z" + "".join(_GREEK)
_ACCENTS = "".join(_COMBINING)
_SUP = rf"(?:\{{[^{{}}]*\}}|\([^()]*\)|[A-Za-z0-9{''.join(_GREEK)}]+)"
_SUB = rf"(?:[A-Za-z{''.join(_GREEK)}]_[A-Za-z0-9]+|{_SUP})"  # Q_t_min: a subscript with its own subscript
#: A symbol token: a base (one letter, accent and prime allowed, or an operator name) and one subscript and/or one
#: superscript, not glued to a longer word on either side.
_SYMBOL = re.compile(
    rf"(?<![A-Za-z0-9_\\{''.join(_GREEK)}])"
    rf"(?P<base>(?:{'|'.join(_OPERATORS + _NAMED)})|[{_LETTER}][{_ACCENTS}]?['′]?)"
    rf"(?P<scripts>(?:_(?P<sub1>{_SUB})(?:\^(?P<sup1>{_SUP}))?)|(?:\^(?P<sup2>{_SUP})(?:_(?P<sub2>{_SUB}))?))"
    rf"(?P<trailing>[{''.join(_SUPERSCRIPTS)}]*)"
    rf"(?![A-Za-z0-9_^{''.join(_GREEK)}])"
)
_CODE = re.compile(r"`([^`]+)`")


def _math_char(ch: str) -> str:
    return _MATH_UNICODE.get(ch, ch)


def _script(text: str) -> str:
    """A subscript or superscript's content in math: an operator name as itself (``\\max``), a letter followed by
    digits as a nested subscript (``a1`` → ``a_1``), a longer word upright (``\\mathrm{steps}``)."""
    if text.startswith("{") and text.endswith("}") or text.startswith("(") and text.endswith(")"):
        text = text[1:-1]
    if text in _OPERATORS:
        return "\\" + text
    nested = re.fullmatch(r"(.)_(.+)", text)
    if nested:  # Q_t_min: the subscript t carries its own subscript min
        return f"{_math_char(nested.group(1))}_{{{_script(nested.group(2))}}}"
    m = re.fullmatch(r"([A-Za-z])([0-9]+)", text)
    if m:
        return f"{m.group(1)}_{{{m.group(2)}}}"
    if len(text) > 1 and text.isalpha() and text.isascii():
        return rf"\mathrm{{{text}}}"
    return "".join(_math_char(c) for c in text)


def _symbol_math(match: re.Match) -> str:
    base = match.group("base")
    if base in _OPERATORS:
        out = "\\" + base
    elif base in _NAMED:
        out = rf"\mathrm{{{base}}}"
    else:
        letter, rest = base[0], base[1:]
        out = _math_char(letter)
        for ch in rest:
            if ch in _COMBINING:
                out = f"{_COMBINING[ch]}{{{out}}}"
            elif ch in "'′":
                out += "'"
    sub = match.group("sub1") or match.group("sub2")
    sup = match.group("sup1") or match.group("sup2")
    if sub is not None:
        out += f"_{{{_script(sub)}}}"
    if sup is not None:
        out += f"^{{{_script(sup)}}}"
    trailing = match.group("trailing") or ""
    if trailing:
        out += "^{" + "".join(_SUPERSCRIPTS[c] for c in trailing) + "}"
    return f"${out}$"


_SCRIPT_RUN = re.compile(f"[{''.join(_SUBSCRIPTS)}]+|[{''.join(_SUPERSCRIPTS)}]+")


def _plain(text: str) -> str:
    """Escape text that holds no symbol token or code span; a run of Unicode sub- or superscripts is one script."""
    out: list[str] = []
    position = 0
    for run in _SCRIPT_RUN.finditer(text):
        start = run.start()
        nucleus = "{}"
        if start > position and text[start - 1] in _GREEK:  # χ² → one math group \chi^{2}
            start -= 1
            nucleus = _GREEK[text[start]]
        out.append(_plain_chars(text[position:start]))
        chars = run.group(0)
        script = ("_{" + "".join(_SUBSCRIPTS[c] for c in chars) + "}" if chars[0] in _SUBSCRIPTS
                  else "^{" + "".join(_SUPERSCRIPTS[c] for c in chars) + "}")
        out.append(r"\ensuremath{" + nucleus + script + "}")
        position = run.end()
    out.append(_plain_chars(text[position:]))
    return "".join(out).replace("--", "-{}-")


def _plain_chars(text: str) -> str:
    out: list[str] = []
    for ch in text:
        if ch in _COMBINING:  # an accent on the previous character: Q̂ → \hat{Q}
            if not out or len(out[-1]) != 1:
                raise LatexError(f"the accent U+{ord(ch):04X} in {text!r} follows no plain letter.")
            out[-1] = r"\ensuremath{" + _COMBINING[ch] + "{" + out[-1] + "}}"
        elif ch in _SPECIALS:
            out.append(_SPECIALS[ch])
        elif ch in _MATH_UNICODE:
            out.append(r"\ensuremath{" + _MATH_UNICODE[ch] + "}")
        elif ch in _TEXT_UNICODE:
            out.append(_TEXT_UNICODE[ch])
        elif ord(ch) < 128:
            out.append(ch)
        else:
            raise LatexError(f"no LaTeX for the character {ch!r} (U+{ord(ch):04X}) in {text!r}; add it to "
                             "verify.report.latex or write it differently.")
    return "".join(out)


def _code(text: str) -> str:
    escaped = "".join(_SPECIALS.get(ch, ch) if ch != "\\" else r"\textbackslash{}" for ch in text)
    return r"\texttt{" + escaped.replace("-", "-{}") + "}"


def latex_text(value) -> str:
    r"""``value`` as LaTeX text (see the module docstring): symbol tokens in math, code in ``\texttt``, the rest
    escaped.

    Raises
    ------
    LatexError
        For a non-ASCII character with no mapping (rather than emitting something ``pdflatex`` rejects).
    """
    # Precomposed accented letters (ŝ) → letter + combining accent; mapped symbols (≠) stay whole.
    text = "".join(ch if ch in _MATH_UNICODE or ch in _TEXT_UNICODE else unicodedata.normalize("NFD", ch)
                   for ch in str(value))
    pieces: list[str] = []
    position = 0
    for code in _CODE.finditer(text):
        pieces.append(_prose(text[position:code.start()]))
        pieces.append(_code(code.group(1)))
        position = code.end()
    pieces.append(_prose(text[position:]))
    return "".join(pieces)


def _prose(text: str) -> str:
    out, position = [], 0
    for match in _SYMBOL.finditer(text):
        out.append(_plain(text[position:match.start()]))
        out.append(_symbol_math(match))
        position = match.end()
    out.append(_plain(text[position:]))
    return "".join(out)


_TABULAR = re.compile(r"(\\begin\{tabular\}.*?\\end\{tabular\})", re.S)


def fit_to_width(latex: str) -> str:
    r"""Wrap each ``tabular`` of ``latex`` in ``\resizebox`` so that it is shrunk to ``\linewidth`` when wider and
    left at its natural size otherwise (``graphicx`` evaluates ``\width`` inside the size argument)."""
    return _TABULAR.sub(lambda m: "\\resizebox{\\ifdim\\width>\\linewidth\\linewidth\\else\\width\\fi}{!}{%\n"
                        + m.group(1) + "%\n}", latex)
