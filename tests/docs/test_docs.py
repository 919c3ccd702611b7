"""The documentation is tested like code: its examples run, its notebook runs, its links resolve.

- Every ``>>>`` example in ``docs/*.md`` and ``README.md`` runs as a doctest from a directory
  outside the repository, so it tests the installed ``alliance_core`` (the wheel in CI), not
  files that happen to sit beside it.
- The notebook ``docs/alliance_analysis.ipynb`` runs cell by cell in one fresh namespace.
- Every relative link in ``README.md`` and ``docs/*.md`` points to an existing file, and every
  ``#anchor`` (in the same page or another Markdown file) matches one of its headings as GitHub
  turns headings into anchors.
"""

from __future__ import annotations

import doctest
import json
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS = REPO_ROOT / "docs"
NOTEBOOK = DOCS / "alliance_analysis.ipynb"


def _documents() -> list[Path]:
    return [REPO_ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


# -- the link checker -------------------------------------------------------------------------
_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target) and ![alt](target), with an optional "title"; the text may hold inline code.
_LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto:, ...


def _prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of the Markdown outside fenced code blocks."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case; Markdown markup and punctuation removed
    (letters, digits, ``_``, ``-`` and spaces kept); each space becomes ``-``. Inline code keeps
    its text, a link keeps its text."""
    text = _INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def heading_anchors(text: str) -> set[str]:
    """Every anchor of a Markdown text; a repeated heading gets ``-1``, ``-2``, ... as on GitHub."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for _, line in _prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def broken_links(document: Path, root: Path) -> list[str]:
    """The broken relative links and anchors of ``document``, one sentence each.

    A link must stay inside ``root`` (the repository) and name an existing file or folder; an
    anchor must be a heading of the Markdown file it points to (the document itself for a bare
    ``#anchor``). Links inside code (fenced blocks, inline code spans) are text, not links.
    """
    problems = []
    text = document.read_text(encoding="utf-8")
    for number, line in _prose_lines(text):
        prose = _INLINE_CODE.sub("", line)
        for match in _LINK.finditer(prose):
            target = match.group(1)
            if _EXTERNAL.match(target):
                continue
            path_part, _, anchor = target.partition("#")
            where = f"{document.relative_to(root)}:{number}: {target}"
            destination = (
                (document.parent / unquote(path_part)).resolve() if path_part else document
            )
            if not destination.is_relative_to(root.resolve()):
                problems.append(f"{where} leaves the repository")
                continue
            if not destination.exists():
                problems.append(f"{where} points to a missing file")
                continue
            if not anchor:
                continue
            if destination.suffix.lower() != ".md":
                problems.append(f"{where} has an anchor into a file that is not Markdown")
                continue
            if unquote(anchor) not in heading_anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{where} names no heading of {destination.name}")
    return problems


def test_slugs_follow_github():
    assert github_slug("Two- and three-level models") == "two--and-three-level-models"
    assert github_slug("The engine: `alliance_core`") == "the-engine-alliance_core"
    assert github_slug("Settings: the dashboard's analysis in code") == (
        "settings-the-dashboards-analysis-in-code"
    )
    assert github_slug('Forest plot: "Show every effect size"') == (
        "forest-plot-show-every-effect-size"
    )
    assert github_slug("Agreement with [R](https://r-project.org)") == "agreement-with-r"
    assert github_slug("Dependent effect sizes (CHE), ρ") == "dependent-effect-sizes-che-ρ"


def test_the_checker_finds_broken_links_and_anchors(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## A section\n\n## A section\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "## Good heading\n\n"
        "[ok](other.md) [ok](other.md#a-section) [ok](other.md#a-section-1) [ok](#good-heading)\n"
        "[ok](https://example.org/missing.md) ![img](other.md) `[code](missing.md)`\n"
        "[missing](nothere.md)\n"
        "[bad anchor](other.md#no-such-heading)\n"
        "[bad local](#bad-heading)\n"
        "[outside](../../outside.md)\n"
        "```\n[in a fence](missing-too.md)\n# not a heading\n```\n"
        "[fenced heading is no anchor](#not-a-heading)\n"
    )
    problems = broken_links(page, tmp_path)
    assert len(problems) == 5, problems
    assert "docs/page.md:7: nothere.md points to a missing file" in problems
    assert any("other.md#no-such-heading names no heading of other.md" in p for p in problems)
    assert any("#bad-heading names no heading of page.md" in p for p in problems)
    assert any("leaves the repository" in p for p in problems)
    assert any("#not-a-heading names no heading" in p for p in problems)


@pytest.mark.parametrize("document", _documents(), ids=lambda p: p.name)
def test_relative_links_and_anchors_resolve(document):
    assert broken_links(document, REPO_ROOT) == []


def test_readme_is_short_and_points_to_docs():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 200
    assert readme.index("make run") < readme.index("make test") < readme.index("##")
    assert "(docs/README.md)" in readme
    screenshot = REPO_ROOT / "docs" / "img" / "overview.png"
    assert "(docs/img/overview.png)" in readme
    assert screenshot.stat().st_size < 300_000


# -- the engine guide's examples --------------------------------------------------------------
def _documents_with_examples() -> list[Path]:
    return [
        path
        for path in _documents()
        if re.search(r"^>>> ", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]


def test_the_engine_guide_has_examples():
    assert DOCS / "engine.md" in _documents_with_examples()


@pytest.mark.parametrize("document", _documents_with_examples(), ids=lambda p: p.name)
def test_doc_examples_run(document, tmp_path, monkeypatch):
    # Outside the repository, so the examples can only use the installed package and its data.
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(
        str(document),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        verbose=False,
        report=True,
    )
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed"


# -- the notebook -----------------------------------------------------------------------------
def test_notebook_is_nbformat_4_without_stored_outputs():
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] for cell in code)
    assert "SIMULATED" in "".join("".join(cell["source"]) for cell in notebook["cells"])


def test_notebook_runs_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    namespace: dict[str, object] = {"__name__": "__main__"}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{NOTEBOOK.name} cell {index}", "exec"), namespace)  # noqa: S102
    # The end-to-end story reached its last step: a Plotly figure of the PTR curve.
    assert type(namespace["fig"]).__name__ == "Figure"
    assert namespace["rob"].method == "CR2"


# -- the map of the engine --------------------------------------------------------------------
def _engine_modules() -> list[str]:
    """Every module of alliance_core as a path below it ("model/wald.py"), package inits left out."""
    root = REPO_ROOT / "alliance_core"
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    )


def test_architecture_names_every_module_of_the_engine():
    """docs/architecture.md is the map: a module it does not name is a part nobody can find."""
    text = (DOCS / "architecture.md").read_text()
    assert [module for module in _engine_modules() if f"`{module}`" not in text] == []


def test_architecture_names_no_module_that_is_gone():
    text = (DOCS / "architecture.md").read_text()
    named = set(re.findall(r"`((?:[a-z_]+/)*[a-z_]+\.py)`", text))
    known = {*_engine_modules(), *("alliance_core/" + m for m in _engine_modules()), "__init__.py"}
    outside = {name for name in named if (REPO_ROOT / name).is_file()}
    assert sorted(named - known - outside) == []
