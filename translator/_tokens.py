"""Honest token estimates for backends that report none.

The estimate is the usual rule of thumb for English text with BPE tokenizers,
about four characters a token, never less than one token for non-empty text.
Usage built from it is marked ``estimated``.
"""

from __future__ import annotations

__all__ = ["estimate_tokens", "estimate_tokens_of_length"]


def estimate_tokens(text: str) -> int:
    """About how many tokens ``text`` is."""
    return estimate_tokens_of_length(len(text))


def estimate_tokens_of_length(chars: int) -> int:
    """About how many tokens ``chars`` characters of text are."""
    return max(1, (chars + 3) // 4) if chars > 0 else 0
