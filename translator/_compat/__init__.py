"""Compatibility matrices: how each backend treats every OpenAI request field."""

from .fields import PART_TYPES, REQUEST_FIELDS, ROLES, SUB_FEATURES
from .matrix import Matrix, Mode
from .report import Action, Report
from .rules import (
    Above,
    Equals,
    OneOf,
    Rule,
    Treatment,
    When,
    emulated,
    ignored,
    rejected,
    supported,
)

__all__ = [
    "PART_TYPES",
    "REQUEST_FIELDS",
    "ROLES",
    "SUB_FEATURES",
    "Above",
    "Action",
    "Equals",
    "Matrix",
    "Mode",
    "OneOf",
    "Report",
    "Rule",
    "Treatment",
    "When",
    "emulated",
    "ignored",
    "rejected",
    "supported",
]
