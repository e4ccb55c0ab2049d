"""How a solution text is cut into steps, and when a partial solution counts as finished.

Why one place: the sample pool, the tree searches and the PRM requests must all see the same steps for the same
text, or scores would not be comparable across strategies. A step is the text between two step delimiters
(default "\\n\\n", as in Snell et al. and search-and-learn); whitespace-only pieces are dropped.
"""

from __future__ import annotations

from tts.grading import extract_answer


def split_steps(text: str, delimiter: str) -> tuple[str, ...]:
    """The non-empty steps of `text`, each stripped of surrounding whitespace."""
    if not delimiter:
        raise ValueError("step_delimiter: invalid value ''; must be non-empty, e.g. '\\n\\n'")
    return tuple(piece.strip() for piece in text.split(delimiter) if piece.strip())


def states_final_answer(step: str) -> bool:
    """True when `step` states a final answer explicitly (\\boxed{} or GSM8K "####"), not by the last-number
    fallback: a search stops expanding such a beam."""
    extraction = extract_answer(step)
    return extraction.answer is not None and not extraction.fallback
