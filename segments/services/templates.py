"""The segments shipped ready to use: RFM value tiers, lifecycle stages, silent levels and the
playbook's behaviour triggers. Data migrations call sync_segment_templates; each template is a
normal dynamic segment (is_template=True, a stable template_key) that operators may edit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.apps import apps as global_apps


@dataclass(frozen=True)
class SegmentTemplate:
    key: str
    name: str
    description: str
    definition: dict[str, Any]
    refresh_interval_minutes: int = 60


def _choice(field: str, value: str) -> dict[str, Any]:
    return {"all": [{"field": field, "op": "in", "value": [value]}]}


# Triggers are about hours, so they refresh every quarter of an hour; the rest follow the
# metrics, which change with orders and the nightly recompute.
TRIGGER_INTERVAL_MINUTES = 15

TEMPLATES: tuple[SegmentTemplate, ...] = (
    SegmentTemplate(
        "rfm_high",
        "高价值客户",
        "RFM value tier: high (recent, frequent, big spenders) / RFM 价值分层：高价值",
        _choice("value_tier", "high"),
    ),
    SegmentTemplate(
        "rfm_potential",
        "潜力客户",
        "RFM value tier: potential / RFM 价值分层：潜力",
        _choice("value_tier", "potential"),
    ),
    SegmentTemplate(
        "rfm_low",
        "低价值客户",
        "RFM value tier: low / RFM 价值分层：低价值",
        _choice("value_tier", "low"),
    ),
    SegmentTemplate(
        "lifecycle_new",
        "新客",
        "Lifecycle stage: new / 生命周期：新客",
        _choice("lifecycle_stage", "new"),
    ),
    SegmentTemplate(
        "lifecycle_active",
        "活跃客户",
        "Lifecycle stage: active / 生命周期：活跃",
        _choice("lifecycle_stage", "active"),
    ),
    SegmentTemplate(
        "lifecycle_silent",
        "沉默客户",
        "Lifecycle stage: silent / 生命周期：沉默",
        _choice("lifecycle_stage", "silent"),
    ),
    SegmentTemplate(
        "lifecycle_lapsed",
        "流失客户",
        "Lifecycle stage: lapsed / 生命周期：流失",
        _choice("lifecycle_stage", "lapsed"),
    ),
    SegmentTemplate(
        "silent_light",
        "轻度沉默",
        "Silent level: light / 沉默程度：轻度",
        _choice("silent_level", "light"),
    ),
    SegmentTemplate(
        "silent_medium",
        "中度沉默",
        "Silent level: medium / 沉默程度：中度",
        _choice("silent_level", "medium"),
    ),
    SegmentTemplate(
        "silent_heavy",
        "重度沉默",
        "Silent level: heavy / 沉默程度：重度",
        _choice("silent_level", "heavy"),
    ),
    SegmentTemplate(
        "registered_24h_no_order",
        "注册满24小时未下单",
        "Registered 24 to 48 hours ago and no paid order yet / 注册 24-48 小时且尚未下单",
        {
            "all": [
                # Datetime fields count days as 24 hours back from as_of: (as_of-48h, as_of-24h].
                {"field": "registered_at", "op": "more_than_days_ago", "value": 1},
                {"field": "registered_at", "op": "within_last_days", "value": 2},
                {"field": "orders_count", "op": "eq", "value": 0},
            ]
        },
        TRIGGER_INTERVAL_MINUTES,
    ),
    SegmentTemplate(
        "cart_24h_no_order",
        "24小时内加购未下单",
        "Added to cart in the last 24 hours, no order after it / 24 小时内加购且之后未下单",
        {
            "all": [
                {
                    "event": "add_to_cart",
                    "within_hours": 24,
                    "not_followed_by": {"event": "order", "within_hours": 24},
                }
            ]
        },
        TRIGGER_INTERVAL_MINUTES,
    ),
    SegmentTemplate(
        "beauty_viewers_7d",
        "7天内浏览美妆3次以上",
        "Viewed beauty products 3 or more times in 7 days / 7 天内浏览美妆商品 3 次及以上",
        {
            "all": [
                {
                    "event": "view_product",
                    "within_days": 7,
                    "where": {"category": "美妆"},
                    "count": {"op": "gte", "value": 3},
                }
            ]
        },
    ),
)


def sync_segment_templates(*, apps: Any = global_apps, overwrite: bool = False) -> int:
    """Create the templates missing by key (with overwrite, also reset the ones operators
    edited); returns how many were written. Takes a migration's apps to run in one."""
    segment_model = apps.get_model("segments", "Segment")
    written = 0
    for template in TEMPLATES:
        existing = segment_model.objects.filter(template_key=template.key).first()
        if existing is not None and not overwrite:
            continue
        name = template.name
        if segment_model.objects.filter(name=name).exclude(template_key=template.key).exists():
            # An operator's own segment has the name: the template steps aside.
            name = f"{name}（模板）"
        fields = {
            "name": name,
            "description": template.description,
            "definition": template.definition,
            "kind": "dynamic",
            "is_template": True,
            "refresh_interval_minutes": template.refresh_interval_minutes,
            "last_error": "",
        }
        if existing is None:
            segment_model.objects.create(template_key=template.key, **fields)
        else:
            segment_model.objects.filter(pk=existing.pk).update(next_refresh_at=None, **fields)
        written += 1
    return written
