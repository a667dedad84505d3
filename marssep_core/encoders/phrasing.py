"""Several wordings of each class text, so the text tower learns the class name, not one string.

The corpus gives one text per class ("a dog barking"); a user types "dog", "dog sound" or "the
barking dog". A text tower trained from scratch on the 39 class texts alone maps such wordings
near the right class text only about half the time (``benchmarks/text_phrasing.py``). The
encoder's training draws, per batch row, one wording of its class from ``TRAINING_TEMPLATES``
(short prompts in the manner of CLIP's templates); the query bank and the evaluation keep the
corpus's text. ``benchmarks/text_phrasing.py`` scores other wordings, none of them drawn in
training.
"""

from __future__ import annotations

# "{text}": the corpus's class text; "{name}": the class label as words ("acoustic guitar")
TRAINING_TEMPLATES = (
    "{text}",
    "{name}",
    "{name} sound",
    "sound of {name}",
    "the {name}",
    "{name} audio",
    "a clip of {text}",
    "hear {name}",
    "{text} sound",
    "listen to {text}",
)


def class_name(label: str) -> str:
    """The class label as words: ``acoustic_guitar`` -> ``acoustic guitar``."""
    return label.replace("_", " ")


def phrasings(label: str, text: str, templates: tuple[str, ...] = TRAINING_TEMPLATES) -> list[str]:
    """The wordings of one class: each template filled with its ``text`` and name (no repeats)."""
    out: list[str] = []
    for template in templates:
        phrase = template.format(text=text, name=class_name(label))
        if phrase not in out:
            out.append(phrase)
    return out
