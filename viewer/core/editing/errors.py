"""Why an edit was refused: one base the GUI catches to show the reason as a message.

A refusal is not a bug: the user asked for something the annotation cannot do as asked (paint a locked segment,
erase with no segment chosen, flatten overlapping segments into one label map...). Controllers catch
:class:`EditRefused` and show its text; anything else that goes wrong still surfaces as an error.
"""
from __future__ import annotations


class EditRefused(ValueError):
    """An edit (or an export of the edits) refused for a reason the user should read.

    A :class:`ValueError` subclass, so callers that catch ``ValueError`` keep working.
    """
