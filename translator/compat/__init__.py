"""Compatibility matrices: how each backend treats every OpenAI request field."""

from .matrix import REQUEST_FIELDS, Action, Matrix, Mode, Report
from .rules import Above, Equals, Rule, Treatment, When, emulated, ignored, rejected, supported

__all__ = [
    "REQUEST_FIELDS",
    "Above",
    "Action",
    "Equals",
    "Matrix",
    "Mode",
    "Report",
    "Rule",
    "Treatment",
    "When",
    "emulated",
    "ignored",
    "rejected",
    "supported",
]
