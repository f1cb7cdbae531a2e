"""The rule language of segments: schema and validation, the field registry, the compiler to one
queryset, explain, and a plain-Python reference evaluator (for tests).

Public API (see each module's docstring for the semantics):
    validate_rules(tree, *, segment_id=None) -> list[RuleError]
    compile_rules(tree, *, as_of, segment_id=None) -> QuerySet[Customer]   raises RulesInvalid
    restrict_to(queryset, customer_ids) -> QuerySet[Customer]
    explain_rules(tree, *, customer_id, as_of) -> ExplainNode
    list_fields() -> list[FieldSpec]
    rules_json_schema() -> dict
"""

from segments.rules.compiler import compile_node, compile_rules, restrict_to
from segments.rules.errors import RuleError, RulesInvalid
from segments.rules.explain import ExplainNode, explain_rules
from segments.rules.fields import FieldSpec, get_field, list_fields
from segments.rules.schema import rules_json_schema
from segments.rules.validation import parse_rules, validate_rules

__all__ = [
    "ExplainNode",
    "FieldSpec",
    "RuleError",
    "RulesInvalid",
    "compile_node",
    "compile_rules",
    "explain_rules",
    "get_field",
    "list_fields",
    "parse_rules",
    "restrict_to",
    "rules_json_schema",
    "validate_rules",
]
