"""Check the translation catalogues: `python -m console.i18n_check [PO_FILE ...]`.

Lists every entry that is untranslated, fuzzy, or whose placeholders differ from its msgid, and
every .mo that is not the compiled form of its .po; exits 1 if there is any. Run it after
`manage.py makemessages` (new strings arrive untranslated or fuzzy) and after compilemessages.
Needs polib (a dev dependency), never GNU gettext.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path

import polib

from console.env import BASE_DIR

LOCALE_DIR = BASE_DIR / "locale"

# Python %-placeholders: %(name)s, %(count)d, %s, %.2f, and the escaped %%.
PERCENT_PLACEHOLDER = re.compile(
    r"%(?:\(\w+\))?[#0+\- ]*(?:\d+|\*)?(?:\.(?:\d+|\*))?[diouxXeEfFgGcrsa%]"
)
BRACE_PLACEHOLDER = re.compile(r"\{\w*\}")
# "% off" parses as a "% o" conversion: msgfmt then refuses any translation without it.
PERCENT_THEN_SPACE = re.compile(r"%\s")


def placeholders(text: str, *, python_format: bool) -> list[str]:
    """The placeholders a translation must keep, sorted (a string may repeat one)."""
    found = BRACE_PLACEHOLDER.findall(text)
    if python_format:
        found += PERCENT_PLACEHOLDER.findall(text)
    return sorted(found)


def entry_problems(entry: polib.POEntry) -> list[str]:
    """What is wrong with one catalogue entry; empty when it is ready to ship."""
    if entry.obsolete:
        return []
    problems = []
    if "fuzzy" in entry.flags:
        problems.append("fuzzy")
    python_format = "python-format" in entry.flags
    if python_format and PERCENT_THEN_SPACE.search(entry.msgid.replace("%%", "")):
        problems.append(
            "'%' followed by a space reads as a format: put '# xgettext:no-python-format' on the "
            "line above the string in the source"
        )
    if entry.msgid_plural:
        translations = [entry.msgstr_plural.get(index, "") for index in sorted(entry.msgstr_plural)]
        source = entry.msgid_plural
    else:
        translations = [entry.msgstr]
        source = entry.msgid
    if not translations or not all(translations):
        problems.append("untranslated")
        return problems
    expected = placeholders(source, python_format=python_format)
    for translation in translations:
        found = placeholders(translation, python_format=python_format)
        if found != expected:
            problems.append(f"placeholders {found} in the translation, {expected} in the msgid")
    return problems


Message = str | tuple[str, tuple[str, ...]]


def compiled_entries(catalogue: polib.POFile | polib.MOFile) -> dict[tuple[str, str], Message]:
    """The messages a .mo holds, or those msgfmt compiles from a .po (translated, not fuzzy)."""
    messages: dict[tuple[str, str], Message] = {}
    for entry in catalogue:
        if entry.obsolete or "fuzzy" in entry.flags or not entry.msgid:
            continue
        if entry.msgid_plural:
            forms = tuple(entry.msgstr_plural[index] for index in sorted(entry.msgstr_plural))
            if forms and all(forms):
                messages[(entry.msgctxt or "", entry.msgid)] = (entry.msgid_plural, forms)
        elif entry.msgstr:
            messages[(entry.msgctxt or "", entry.msgid)] = entry.msgstr
    return messages


def mo_problems(po_path: Path, catalogue: polib.POFile) -> list[str]:
    """Why the .mo next to a .po is not its compiled form (missing, stale, another header)."""
    mo_path = po_path.with_suffix(".mo")
    if not mo_path.exists():
        return [f"{mo_path}: missing: run manage.py compilemessages"]
    compiled = polib.mofile(str(mo_path))
    problems = []
    expected, found = compiled_entries(catalogue), compiled_entries(compiled)
    stale = sorted(key[1] for key in expected if found.get(key) != expected[key])
    extra = sorted(key[1] for key in found if key not in expected)
    if stale or extra:
        problems.append(
            f"{mo_path}: not compiled from the current .po ({len(stale)} messages differ or are "
            f"missing, {len(extra)} extra, e.g. {(stale + extra)[0]!r}): run manage.py "
            "compilemessages"
        )
    plural_forms = catalogue.metadata.get("Plural-Forms", "")
    if compiled.metadata.get("Plural-Forms", "") != plural_forms:
        problems.append(f"{mo_path}: Plural-Forms differs from the .po: run compilemessages")
    return problems


def catalogue_problems(po_path: Path) -> list[str]:
    """Every problem of one .po and its .mo, one line each, as `path:line: msgid: problem`."""
    catalogue = polib.pofile(str(po_path))
    problems = []
    for entry in catalogue:
        for problem in entry_problems(entry):
            problems.append(f"{po_path}:{entry.linenum}: {entry.msgid!r}: {problem}")
    language = po_path.parent.parent.name  # <language>/LC_MESSAGES/<domain>.po
    if language.startswith("zh") and (
        catalogue.metadata.get("Plural-Forms", "").replace(" ", "") != "nplurals=1;plural=0;"
    ):
        problems.append(f"{po_path}: Chinese has one plural form: 'nplurals=1; plural=0;'")
    return problems + mo_problems(po_path, catalogue)


def find_catalogues(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    return sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))


def main(arguments: Sequence[str] | None = None) -> int:
    paths = [Path(argument) for argument in arguments or []] or find_catalogues()
    if not paths:
        sys.stderr.write(f"No catalogue under {LOCALE_DIR}: run manage.py makemessages\n")
        return 1
    problems = [problem for path in paths for problem in catalogue_problems(path)]
    for problem in problems:
        sys.stdout.write(problem + "\n")
    if problems:
        sys.stderr.write(f"{len(problems)} problems in {len(paths)} catalogues\n")
        return 1
    sys.stderr.write(f"{len(paths)} catalogues: every message translated and compiled\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
