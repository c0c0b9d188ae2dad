"""``python -m theory.derivations [NOTES]``: print the derived formulas' Markdown block, or rewrite it in ``NOTES``."""

import sys

from theory.derivations import notes_markdown, update_notes

if len(sys.argv) > 1:
    print("updated" if update_notes(sys.argv[1]) else "unchanged", sys.argv[1])
else:
    print(notes_markdown())
