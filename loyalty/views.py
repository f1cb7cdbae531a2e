"""The loyalty section: tiers and points overviews (every role), the rules pages (admins edit)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.forms import BaseForm, BaseFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from loyalty.charts import (
    TierBar,
    figure_data,
    points_overview_figure,
    tier_distribution_figure,
)
from loyalty.forms import (
    PointsRuleForm,
    PointsRuleFormSet,
    PointsSettingsForm,
    TierForm,
    TierFormSet,
    TierSettingsForm,
    new_points_rule_initial,
    new_tier_initial,
    next_rank,
    points_rule_initial,
    tier_initial,
    typed_rows,
)
from loyalty.models import PointsRule, Tier
from loyalty.queries import (
    POINTS_USAGE_TARGET,
    get_points_overview,
    list_tier_distribution,
    sum_points_months,
)
from loyalty.services.ledger import current_settings
from loyalty.services.rules import (
    CHANGE_POINTS_RULE_PERMISSION,
    CHANGE_SETTINGS_PERMISSION,
    PointsRuleError,
    PointsRulesError,
    preview_tier_rules,
    update_points_rules,
    update_points_settings,
    update_tier_rules,
)
from loyalty.services.tiers import (
    CHANGE_TIER_PERMISSION,
    RuleError,
    TierImpact,
    TierImpactRow,
    TierRuleInput,
    TierRulesError,
)

TIER_PREFIX = "tiers"
RULE_PREFIX = "rules"
IMPACT_TARGET = "tier-impact"
OVERVIEW_MONTHS = 12
ADD = "add"


def _tabs(current: str) -> dict[str, Any]:
    return {"loyalty_tab": current}


# --- overviews ---------------------------------------------------------------------------------


@require_GET
@permission_required("loyalty.view_tier", raise_exception=True)
def tiers_overview(request: HttpRequest) -> HttpResponse:
    distribution = list_tier_distribution()
    figure = tier_distribution_figure(
        [
            TierBar(label=row.tier.name, members=row.members, colour=row.tier.colour)
            for row in distribution
        ]
    )
    context = {
        **_tabs("tiers"),
        "distribution": distribution,
        "members_total": sum(row.members for row in distribution),
        "settings": current_settings(),
        "chart": figure_data(figure),
    }
    return render(request, "loyalty/tiers.html", context)


@require_GET
@permission_required("loyalty.view_pointsentry", raise_exception=True)
def points_overview(request: HttpRequest) -> HttpResponse:
    months = get_points_overview(months=OVERVIEW_MONTHS, now=timezone.now())
    figure = points_overview_figure(months, target=POINTS_USAGE_TARGET)
    context = {
        **_tabs("points"),
        "months": list(reversed(months)),  # the table reads newest first
        "totals": sum_points_months(months),
        "target": POINTS_USAGE_TARGET,
        "chart": figure_data(figure),
    }
    return render(request, "loyalty/points.html", context)


# --- tier rules --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpactLine:
    row: TierImpactRow
    rule: TierRuleInput

    @property
    def name(self) -> str:
        return str(Tier(name_zh=self.rule.name_zh, name_en=self.rule.name_en).name)


def _tier_rules_page(
    request: HttpRequest,
    formset: BaseFormSet,
    settings_form: BaseForm,
    *,
    list_errors: Sequence[str] = (),
    status: int = 200,
) -> HttpResponse:
    context = {
        **_tabs("tier_rules"),
        "formset": formset,
        "settings_form": settings_form,
        "list_errors": list_errors,
        "impact_target": IMPACT_TARGET,
    }
    return render(request, "loyalty/tier_rules.html", context, status=status)


def _bound_tier_forms(request: HttpRequest) -> tuple[BaseFormSet, TierSettingsForm]:
    formset = TierFormSet(data=request.POST, prefix=TIER_PREFIX)
    settings_form = TierSettingsForm(data=request.POST, instance=current_settings())
    return formset, settings_form


def _kept_forms(formset: BaseFormSet) -> list[TierForm]:
    """The rows of a valid formset not marked for removal, in the order they were listed."""
    deleted = {id(form) for form in formset.deleted_forms}
    return [form for form in formset.forms if id(form) not in deleted]


def _apply_rule_errors(
    errors: Sequence[RuleError | PointsRuleError], forms: Sequence[BaseForm]
) -> list[str]:
    """Put each error on its row and field; returns those about the list as a whole."""
    list_errors: list[str] = []
    for error in errors:
        if error.index is None:
            list_errors.append(error.message)
            continue
        form = forms[error.index]
        form.add_error(error.field if error.field in form.fields else None, error.message)
    return list_errors


def _apply_validation_error(form: BaseForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, problems in error.message_dict.items():
            for problem in problems:
                form.add_error(field if field in form.fields else None, problem)
    else:
        for problem in error.messages:
            form.add_error(None, problem)


@require_http_methods(["GET", "POST"])
@permission_required(CHANGE_TIER_PERMISSION, raise_exception=True)
def tier_rules(request: HttpRequest) -> HttpResponse:
    if not request.user.has_perm(CHANGE_SETTINGS_PERMISSION):
        raise PermissionDenied
    if request.method == "GET":
        formset = TierFormSet(
            prefix=TIER_PREFIX,
            initial=[tier_initial(tier) for tier in Tier.objects.order_by("rank")],
        )
        return _tier_rules_page(request, formset, TierSettingsForm(instance=current_settings()))

    formset, settings_form = _bound_tier_forms(request)
    if request.POST.get("action") == ADD:
        # A new empty row under what was typed; nothing is checked or saved yet.
        rows = typed_rows(formset)
        rows.append(new_tier_initial(next_rank(rows)))
        return _tier_rules_page(
            request,
            TierFormSet(prefix=TIER_PREFIX, initial=rows),
            TierSettingsForm(
                initial={name: settings_form[name].value() for name in settings_form.fields}
            ),
        )
    if not (formset.is_valid() and settings_form.is_valid()):
        return _tier_rules_page(request, formset, settings_form, status=400)
    forms = _kept_forms(formset)
    try:
        update_tier_rules(
            rules=[form.to_rule() for form in forms],
            growth_window_days=settings_form.cleaned_data["growth_window_days"],
            downgrade_grace_days=settings_form.cleaned_data["downgrade_grace_days"],
            actor=request.user,
        )
    except TierRulesError as error:
        list_errors = _apply_rule_errors(error.rule_errors, forms)
        return _tier_rules_page(
            request, formset, settings_form, list_errors=list_errors, status=400
        )
    except ValidationError as error:
        _apply_validation_error(settings_form, error)
        return _tier_rules_page(request, formset, settings_form, status=400)
    messages.success(
        request,
        _("Tier rules saved. Members move to their new tiers as soon as the recompute has run."),
    )
    return redirect("loyalty:tiers")


def _labelled(form: BaseForm, field: str, message: str) -> str:
    found = form.fields.get(field)
    return f"{found.label}: {message}" if found is not None and found.label else message


def _typed_errors(formset: BaseFormSet, settings_form: BaseForm) -> list[str]:
    """Every form error of the page, one line each, naming the row and the field."""
    lines = [
        _labelled(settings_form, field, str(problem))
        for field, problems in settings_form.errors.items()
        for problem in problems
    ]
    lines += [str(problem) for problem in formset.non_form_errors()]
    for number, form in enumerate(formset.forms, start=1):
        if getattr(form, "cleaned_data", {}).get("DELETE"):
            continue  # a removed row is not checked
        code = form["code"].value() or ""
        for field, problems in form.errors.items():
            for problem in problems:
                lines.append(
                    _("Row %(number)d (%(code)s) · %(error)s")
                    % {
                        "number": number,
                        "code": code,
                        "error": _labelled(form, field, str(problem)),
                    }
                )
    return lines


@require_POST
@permission_required(CHANGE_TIER_PERMISSION, raise_exception=True)
def tier_rules_preview(request: HttpRequest) -> HttpResponse:
    formset, settings_form = _bound_tier_forms(request)
    errors: list[str] = []
    impact: TierImpact | None = None
    rules: list[TierRuleInput] = []
    if formset.is_valid() and settings_form.is_valid():
        forms = _kept_forms(formset)
        rules = [form.to_rule() for form in forms]
        try:
            impact = preview_tier_rules(
                rules=rules,
                growth_window_days=settings_form.cleaned_data["growth_window_days"],
                downgrade_grace_days=settings_form.cleaned_data["downgrade_grace_days"],
                now=timezone.now(),
            )
        except TierRulesError as error:
            errors += _apply_rule_errors(error.rule_errors, forms)
        except ValidationError as error:
            _apply_validation_error(settings_form, error)
    errors += _typed_errors(formset, settings_form)
    context = {
        "errors": errors,
        "impact": impact,
        "lines": [ImpactLine(row=row, rule=rules[row.index]) for row in impact.tiers]
        if impact is not None
        else [],
        "impact_target": IMPACT_TARGET,
    }
    # 422: htmx swaps the errors in where the table would be (see the htmx-config in base.html).
    return render(
        request, "loyalty/tier_impact.html", context, status=422 if impact is None else 200
    )


# --- points rules and settings -----------------------------------------------------------------


def _points_rules_page(
    request: HttpRequest,
    *,
    formset: BaseFormSet | None = None,
    settings_form: BaseForm | None = None,
    list_errors: Sequence[str] = (),
    status: int = 200,
) -> HttpResponse:
    rules = list(PointsRule.objects.order_by("pk"))
    loyalty_settings = current_settings()
    if formset is None:
        formset = PointsRuleFormSet(
            prefix=RULE_PREFIX, initial=[points_rule_initial(rule) for rule in rules]
        )
    if settings_form is None:
        settings_form = PointsSettingsForm(instance=loyalty_settings)
    context = {
        **_tabs("points_rules"),
        "rules": rules,
        "loyalty_settings": loyalty_settings,
        "formset": formset,
        "settings_form": settings_form,
        "list_errors": list_errors,
        "may_edit_rules": request.user.has_perm(CHANGE_POINTS_RULE_PERMISSION),
        "may_edit_settings": request.user.has_perm(CHANGE_SETTINGS_PERMISSION),
    }
    return render(request, "loyalty/points_rules.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required("loyalty.view_pointsrule", raise_exception=True)
def points_rules(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _points_rules_page(request)
    if not request.user.has_perm(CHANGE_POINTS_RULE_PERMISSION):
        raise PermissionDenied
    formset = PointsRuleFormSet(data=request.POST, prefix=RULE_PREFIX)
    if request.POST.get("action") == ADD:
        rows = typed_rows(formset)
        rows.append(new_points_rule_initial())
        return _points_rules_page(
            request, formset=PointsRuleFormSet(prefix=RULE_PREFIX, initial=rows)
        )
    if not formset.is_valid():
        return _points_rules_page(request, formset=formset, status=400)
    forms: list[PointsRuleForm] = list(formset.forms)
    try:
        update_points_rules(rules=[form.to_rule() for form in forms], actor=request.user)
    except PointsRulesError as error:
        list_errors = _apply_rule_errors(error.rule_errors, forms)
        return _points_rules_page(request, formset=formset, list_errors=list_errors, status=400)
    messages.success(request, _("Points rules saved. They apply from the next earning run on."))
    return redirect("loyalty:points_rules")


@require_POST
@permission_required(CHANGE_SETTINGS_PERMISSION, raise_exception=True)
def points_settings(request: HttpRequest) -> HttpResponse:
    settings_form = PointsSettingsForm(data=request.POST, instance=current_settings())
    if not settings_form.is_valid():
        return _points_rules_page(request, settings_form=settings_form, status=400)
    try:
        update_points_settings(**settings_form.cleaned_data, actor=request.user)
    except ValidationError as error:
        _apply_validation_error(settings_form, error)
        return _points_rules_page(request, settings_form=settings_form, status=400)
    messages.success(request, _("Points settings saved."))
    return redirect("loyalty:points_rules")
