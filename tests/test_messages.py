"""The message catalogues hold every text the code asks for, in both languages."""

from __future__ import annotations

import ast
import string
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir

from procedures import messages
from procedures.messages import accepted, catalogue, chosen, from_environment, speaking, t

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("procedures", "engine", "api")


def used() -> dict[str, str]:
    """Every message id the code passes to ``t``, with where it is."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        for filename, line, message, _comments, _context in extract_from_dir(
            ROOT / package, method_map=[("**.py", "python")], keywords={"t": None}
        ):
            if isinstance(message, str):
                found.setdefault(message, f"{package}/{filename}:{line}")
    return found


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def test_the_code_asks_for_messages_by_a_literal_id() -> None:
    # an f-string or a variable as the id can never be in a catalogue, and a
    # call inside an f-string is not extracted
    offenders = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t":
                    first = node.args[0] if node.args else None
                    if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                if isinstance(node, ast.JoinedStr):
                    inner = [
                        n for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "t"
                    ]
                    offenders.extend(f"{path.relative_to(ROOT)}:{n.lineno} (inside an f-string)" for n in inner)
    assert offenders == []


@pytest.mark.parametrize("language", messages.LANGUAGES)
def test_every_message_is_in_the_catalogue_with_the_same_values(language: str) -> None:
    texts = catalogue(language)
    code = used()
    assert code, "no message found in the code: the extraction is broken"
    missing = {m: where for m, where in code.items() if m not in texts}
    assert missing == {}, f"not in the {language} catalogue"
    wrong = {m: texts[m] for m in code if fields(texts[m]) != fields(m)}
    assert wrong == {}, "a translation names other values than its id"
    assert sorted(set(texts) - set(code)) == [], f"in the {language} catalogue but used nowhere"


def test_vietnamese_is_spoken_unless_english_is_asked_for() -> None:
    assert t("Not found") == "Không tìm thấy"
    with speaking("en"):
        assert t("Not found") == "Not found"
        with speaking("vi"):
            assert t("Not found") == "Không tìm thấy"
    assert t("Not found") == "Không tìm thấy"


def test_a_value_is_put_in_as_it_is() -> None:
    name = "{0} {__class__} }{"
    with speaking("en"):
        assert name in t("No published version of procedure {code}", code=name)


def test_the_language_is_chosen_explicitly_only() -> None:
    assert from_environment({"LANG": "en_US.UTF-8", "LC_ALL": "en_US.UTF-8"}) == "vi"
    assert from_environment({"TINHGON_LANG": "en"}) == "en"
    assert from_environment({"TINHGON_LANG": "EN_us"}) == "en"
    assert chosen("vi-VN") == "vi" and chosen(None) == "vi"
    with pytest.raises(ValueError):
        chosen("fr")
    assert accepted("en-GB,vi;q=0.8") == "en"
    assert accepted("vi,en;q=0.9") == "vi"
    assert accepted("fr, en") == "vi"
    assert accepted(None) == "vi"
