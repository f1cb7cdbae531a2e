from __future__ import annotations

import datetime as dt
import html
import re
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import polib
import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import formats, timezone, translation

from console import i18n_check
from customers.models import ImportRun
from segments.models import Segment
from tests.factories import SHANGHAI

CATALOGUE = Path(django_settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
# What a translation must keep of its msgid: %(name)s, %s, %% (python-format only) and {name}.
PERCENT_PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[#0+\- ]*\d*(?:\.\d+)?[diouxXeEfFgGcrs%]")
BRACE_PLACEHOLDER = re.compile(r"\{\w*\}")
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def text(fragment: str) -> str:
    return html.unescape(" ".join(re.sub(r"<[^>]+>", " ", fragment).split()))


def by_testid(content: str, testid: str) -> str:
    found = re.search(rf'<(\w+)[^>]*data-testid="{testid}"[^>]*>(.*?)</\1>', content, re.S)
    assert found is not None, f"nothing with data-testid={testid}"
    return text(found.group(2))


def column_headers(content: str) -> list[str]:
    head = re.search(r"<thead>(.*?)</thead>", content, re.S)
    assert head is not None
    cells = re.findall(r"<th[^>]*>(.*?)</th>", head.group(1), re.S)
    # Without the sort mark of the sorted column.
    return [text(cell).rstrip(" ▲▼") for cell in cells]


def placeholders(message: str, entry: polib.POEntry) -> Counter[str]:
    found = BRACE_PLACEHOLDER.findall(message)
    if "python-format" in entry.flags:
        found += PERCENT_PLACEHOLDER.findall(message)
    return Counter(found)


def live_entries() -> list[polib.POEntry]:
    return [entry for entry in polib.pofile(str(CATALOGUE)) if not entry.obsolete]


def compiled(catalogue: polib.POFile | polib.MOFile) -> dict[tuple[str, str], Any]:
    return {
        (entry.msgctxt or "", entry.msgid): (
            (entry.msgid_plural, dict(entry.msgstr_plural)) if entry.msgid_plural else entry.msgstr
        )
        for entry in catalogue
        if entry.msgid and not entry.obsolete and "fuzzy" not in entry.flags
    }


@pytest.fixture
def chinese(settings: Any) -> None:
    settings.LANGUAGE_CODE = "zh-hans"


@pytest.fixture
def shop(customer_factory: Any, order_factory: Any, event_factory: Any, make_user: Any) -> Any:
    customer = customer_factory(name="Alice", city="Shanghai", channel="mini_program")
    order_factory(
        customer=customer,
        placed_at=timezone.now() - dt.timedelta(days=2),
        amount=Decimal("121755.59"),
        category="beauty",
    )
    event_factory(customer=customer, properties={"category": "beauty"})
    ImportRun.objects.create(
        kind="orders",
        file_name="orders-june.csv",
        status="done",
        rows_total=13579,
        rows_imported=12345,
        rows_rejected=1234,
        created_by=make_user("Operators", username="importer"),
        finished_at=timezone.now(),
    )
    return customer


# --- the catalogue ----------------------------------------------------------------------------


def test_every_message_of_the_chinese_catalogue_is_translated_and_none_is_fuzzy() -> None:
    entries = live_entries()

    untranslated = [entry.msgid for entry in entries if not entry.translated()]
    fuzzy = [entry.msgid for entry in entries if "fuzzy" in entry.flags]

    assert len(entries) > 300
    assert untranslated == []
    assert fuzzy == []


def test_chinese_has_one_plural_form_and_every_plural_is_translated_in_it() -> None:
    catalogue = polib.pofile(str(CATALOGUE))
    plurals = [entry for entry in live_entries() if entry.msgid_plural]

    assert catalogue.metadata["Plural-Forms"] == "nplurals=1; plural=0;"
    assert plurals
    assert [entry.msgid for entry in plurals if set(entry.msgstr_plural) != {0}] == []


def test_every_translation_keeps_the_placeholders_of_its_message() -> None:
    mismatches = []
    for entry in live_entries():
        source = entry.msgid_plural or entry.msgid
        translations = list(entry.msgstr_plural.values()) if entry.msgid_plural else [entry.msgstr]
        for translation_ in translations:
            if placeholders(translation_, entry) != placeholders(source, entry):
                mismatches.append((entry.msgid, translation_))

    assert mismatches == []


def test_the_compiled_catalogue_is_the_compiled_form_of_the_po_file() -> None:
    # A .po edited without running compilemessages ships stale text: CI has no gettext to fix it.
    from_po = compiled(polib.pofile(str(CATALOGUE)))
    from_mo = compiled(polib.mofile(str(CATALOGUE.with_suffix(".mo"))))

    assert {key for key in from_po if key not in from_mo} == set()
    assert {key for key in from_mo if key not in from_po} == set()
    assert [key[1] for key in from_po if from_po[key] != from_mo[key]] == []


def test_django_reads_the_compiled_catalogue() -> None:
    with translation.override("zh-hans"):
        assert translation.gettext("Customers") == "客户"
        assert translation.ngettext("%(counter)s order", "%(counter)s orders", 1) == (
            "%(counter)s 笔订单"
        )
        assert translation.ngettext("%(counter)s order", "%(counter)s orders", 7) == (
            "%(counter)s 笔订单"
        )
    with translation.override("en"):
        assert translation.gettext("Customers") == "Customers"


def test_the_check_passes_on_the_shipped_catalogue(capsys: pytest.CaptureFixture[str]) -> None:
    assert i18n_check.main([str(CATALOGUE)]) == 0
    assert capsys.readouterr().out == ""


def test_the_check_lists_untranslated_fuzzy_and_stale_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a catalogue compiled, then changed: one new message, one fuzzy, one lost placeholder
    catalogue = polib.POFile()
    catalogue.metadata = {
        "Content-Type": "text/plain; charset=UTF-8",
        "Plural-Forms": "nplurals=1; plural=0;",
    }
    catalogue.append(polib.POEntry(msgid="Customers", msgstr="客户"))
    catalogue.append(
        polib.POEntry(msgid="Tag “%(tag)s” added.", msgstr="已添加标签。", flags=["python-format"])
    )
    path = tmp_path / "zh_Hans" / "LC_MESSAGES" / "django.po"
    path.parent.mkdir(parents=True)
    catalogue.save(str(path))
    catalogue.save_as_mofile(str(path.with_suffix(".mo")))
    catalogue.append(polib.POEntry(msgid="Segments", msgstr=""))
    catalogue.append(polib.POEntry(msgid="Reports", msgstr="报表", flags=["fuzzy"]))
    catalogue.save(str(path))

    # when
    status = i18n_check.main([str(path)])

    # then
    problems = capsys.readouterr().out.splitlines()
    assert status == 1
    assert [line.split(": ", 1)[1] for line in problems[:3]] == [
        "'Tag “%(tag)s” added.': placeholders [] in the translation, ['%(tag)s'] in the msgid",
        "'Segments': untranslated",
        "'Reports': fuzzy",
    ]
    # and no more: the .mo holds what msgfmt compiles of this .po, so it is not stale
    assert len(problems) == 3


def test_the_check_catches_a_forgotten_compile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalogue = polib.POFile()
    catalogue.metadata = {"Content-Type": "text/plain; charset=UTF-8"}
    catalogue.append(polib.POEntry(msgid="Customers", msgstr="客户"))
    path = tmp_path / "django.po"
    catalogue.save_as_mofile(str(path.with_suffix(".mo")))
    catalogue[0].msgstr = "顾客"
    catalogue.save(str(path))

    status = i18n_check.main([str(path)])

    out = capsys.readouterr().out
    assert status == 1
    assert "not compiled from the current .po" in out
    assert "'Customers'" in out


# --- the pages --------------------------------------------------------------------------------


def test_the_home_page_is_in_chinese_by_default(chinese: None, operator_client: Client) -> None:
    content = operator_client.get("/").content.decode()

    assert '<a href="/customers/" data-nav="customers">客户</a>' in content
    assert "<title>首页 · 运营台</title>" in content
    assert "今日概览" in content
    assert by_testid(content, "figure-customers") == "客户 0 查看客户"
    assert by_testid(content, "current-role") == "运营专员"
    assert '<button type="submit" class="button-link">退出登录</button>' in content


def test_the_customer_list_is_in_chinese_by_default(
    chinese: None, operator_client: Client, shop: Any
) -> None:
    content = operator_client.get("/customers/").content.decode()

    assert '<a href="/customers/" aria-current="page" data-nav="customers">客户</a>' in content
    assert column_headers(content)[:8] == [
        "姓名",
        "外部 ID",
        "手机号",
        "城市",
        "渠道",
        "标签",
        "注册时间",
        "最近访问",
    ]
    assert by_testid(content, "result-count") == "1 位客户 · 显示第 1–1 位"
    assert "<td>小程序</td>" in content


def test_after_choosing_english_the_pages_are_in_english(
    chinese: None, operator_client: Client, shop: Any
) -> None:
    # when
    switched = operator_client.post("/i18n/setlang/", {"language": "en", "next": "/"})

    # then
    assert switched.status_code == 302
    home = operator_client.get("/").content.decode()
    assert '<a href="/customers/" data-nav="customers">Customers</a>' in home
    assert "Today at a glance" in home
    assert by_testid(home, "current-role") == "Operator"
    listing = operator_client.get("/customers/").content.decode()
    assert column_headers(listing)[:8] == [
        "Name",
        "External id",
        "Phone",
        "City",
        "Channel",
        "Tags",
        "Registered",
        "Last seen",
    ]
    assert by_testid(listing, "result-count") == "1 customer · showing 1–1"


@pytest.mark.parametrize(
    "path",
    ["/", "/customers/", "/customers/{id}/", "/customers/import/", "/customers/import/{run}/"],
    ids=["home", "list", "360", "import", "import-report"],
)
def test_with_english_as_the_default_no_chinese_is_left_on_the_page(
    settings: Any, admin_client_role: Client, shop: Any, path: str
) -> None:
    # given
    settings.LANGUAGE_CODE = "en"
    run = ImportRun.objects.get()

    # when
    content = admin_client_role.get(path.format(id=shop.pk, run=run.pk)).content.decode()

    # then the brand mark and the switch's own name of Chinese are Chinese on purpose
    content = content.replace('aria-hidden="true">运</span>', "").replace(">简体中文<", "")
    # and the names of the shipped segment templates are data (the 360 offers them to explain)
    for name in Segment.objects.values_list("name", flat=True):
        content = content.replace(f">{html.escape(name)}<", "><")
    assert HAN.findall(content) == []


# --- numbers and dates ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "revenue_label", "imports_heading"),
    [("zh-hans", "近 30 天销售额", "最近导入"), ("en", "Revenue, last 30 days", "Latest imports")],
    ids=["zh-hans", "en"],
)
def test_money_and_counts_are_grouped_by_thousands_in_both_languages(
    settings: Any,
    admin_client_role: Client,
    shop: Any,
    language: str,
    revenue_label: str,
    imports_heading: str,
) -> None:
    settings.LANGUAGE_CODE = language

    content = admin_client_role.get("/").content.decode()

    assert by_testid(content, "figure-revenue").startswith(f"{revenue_label} ¥121,755.59 ")
    assert imports_heading in content
    assert '<td class="num">12,345</td>' in content
    assert '<td class="num">1,234</td>' in content
    report = admin_client_role.get(f"/customers/import/{ImportRun.objects.get().pk}/")
    assert '<dd data-count="rows_total">13,579</dd>' in report.content.decode()


@pytest.mark.parametrize("language", ["zh-hans", "en"])
def test_the_order_amounts_on_the_360_page_are_grouped(
    settings: Any, operator_client: Client, shop: Any, language: str
) -> None:
    settings.LANGUAGE_CODE = language

    content = operator_client.get(f"/customers/{shop.pk}/").content.decode()

    assert '<td class="num">¥121,755.59</td>' in content


def test_ids_in_attributes_are_not_grouped(
    chinese: None, admin_client_role: Client, customer_factory: Any, make_user: Any
) -> None:
    # given ids past a thousand, which the page would show as 12,345
    customer_factory(pk=12345)
    ImportRun.objects.create(
        pk=23456, kind="orders", file_name="orders.csv", created_by=make_user("Operators")
    )

    listing = admin_client_role.get("/customers/").content.decode()
    imports = admin_client_role.get("/customers/import/").content.decode()

    assert '<tr data-customer-id="12345">' in listing
    assert '<tr data-import-run="23456">' in imports


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        (
            "zh-hans",
            ["1,234,567.5", "2026年3月8日", "2026年3月8日 20:05", "2026-03-08", "2026-03-08 20:05"],
        ),
        (
            "en",
            [
                "1,234,567.5",
                "March 8, 2026",
                "March 8, 2026, 20:05",
                "2026-03-08",
                "2026-03-08 20:05",
            ],
        ),
    ],
    ids=["zh-hans", "en"],
)
def test_each_language_formats_numbers_and_dates_its_own_way(
    language: str, expected: list[str]
) -> None:
    moment = dt.datetime(2026, 3, 8, 20, 5, tzinfo=SHANGHAI)

    with translation.override(language):
        shown = [
            formats.localize(Decimal("1234567.5")),
            formats.date_format(moment.date()),
            formats.date_format(moment, "DATETIME_FORMAT"),
            formats.date_format(moment.date(), "SHORT_DATE_FORMAT"),
            formats.date_format(moment, "SHORT_DATETIME_FORMAT"),
        ]

    assert shown == expected
