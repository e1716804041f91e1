"""Text from a definition reaches DOT only as text: no HTML-like label, no
link, no broken quoting, whatever a name holds."""

from __future__ import annotations

import re

import pytest

from procedures import load_text
from procedures.compare_view import compare_diagram
from procedures.diagram import diagram
from procedures.dottext import cell, text, visible
from tests.conftest import definition_text

ATTACKS = [
    '<x> URL="javascript:alert(document.domain)" label=<y>',
    "Tổ hậu cần \\",
    'a"b\\"c',
    '<<TABLE><TR><TD HREF="javascript:alert(1)">x</TD></TR></TABLE>>',
    "dòng một\ndòng hai\\n",
]


def _definition(name: str) -> str:
    quoted = name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return definition_text(
        f"""\
        roles:
          - {{id: dan, name: "{quoted}", kind: applicant}}
          - {{id: cb, name: "{quoted}", kind: office, unit: "{quoted}"}}
        documents:
          - {{id: don, name: "{quoted}", from: applicant}}
          - {{id: kq, name: "{quoted}", deliverable: true}}
        steps:
          - {{id: nop, name: "{quoted}", role: dan, inputs: [don]}}
          - {{id: xet, name: "{quoted}", role: cb, duration: 1d, inputs: [don], outputs: [kq], outcomes: {{"{quoted}": proceed}}}}
        """
    )


@pytest.mark.parametrize("name", ATTACKS)
def test_a_hostile_name_is_drawn_as_written_and_links_nowhere(name: str) -> None:
    defn = load_text(_definition(name))
    for graph in (diagram(defn), diagram(defn, documents=True, full=True), compare_diagram(defn, defn)):
        svg = graph.pipe(format="svg", encoding="utf-8", quiet=True)  # unparseable DOT would raise here
        assert not re.search(r"<a [^>]*href=\"javascript", svg, re.I)
        assert "<TABLE" not in svg and "<x>" not in svg


def test_text_doubles_backslashes_and_is_never_html() -> None:
    assert str(text("a\\")) == "a\\\\"
    assert type(text("<b>")).__name__ == "NoHtml"
    assert cell('<a href="x">') == "&lt;a href=&quot;x&quot;&gt;"
    assert visible("a\x00b\x1b\ud800") == "a\u2400b\u241b\ufffd"
