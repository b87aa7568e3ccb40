"""The documentation as a reader follows it: links resolve, every command is documented, the README stays short."""

from __future__ import annotations

import argparse
import re
import unicodedata
from pathlib import Path

import pytest

from arena.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_MAX_LINES = 270  # the front door: about 260 lines, reference material lives in docs/

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]*`")
# [text](target) and ![alt](target); the text may hold code spans, the target no spaces or parens
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def doc_pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks: what a code host renders as Markdown."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def github_slug(heading: str) -> str:
    """The anchor a code host gives a heading: the rendered text, lower case, punctuation dropped."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = []
    for char in text:
        if char in " -_" or unicodedata.category(char)[0] in "LN":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for _, line in prose_lines(page.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match.group(2))
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")  # repeated headings get -1, -2
    return anchors


def relative_links(page: Path) -> list[tuple[int, str]]:
    links = []
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in LINK.finditer(INLINE_CODE.sub("", line)):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto:, ...
                continue
            links.append((number, target))
    return links


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of a page whose file, or whose heading, does not exist."""
    problems = []
    for number, target in relative_links(page):
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        where = f"{page.relative_to(root)}:{number}: {target}"
        if not destination.exists():
            problems.append(f"{where}: no file {destination.relative_to(root)}")
        elif anchor and destination.suffix == ".md" and anchor not in anchors_of(destination):
            problems.append(f"{where}: no heading #{anchor} in {destination.relative_to(root)}")
    return problems


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    """Every command and subcommand, as typed after `arena` ("run", "db current", ...)."""
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                path = (*prefix, name)
                paths.append(" ".join(path))
                paths.extend(command_paths(sub, path))
    return paths


def undocumented(commands: list[str], text: str) -> list[str]:
    """Commands that never appear as `arena <command>` (not as a prefix of a longer word)."""
    missing = []
    for command in commands:
        words = r"\s+".join(re.escape(word) for word in command.split())
        if not re.search(r"\barena\s+" + words + r"(?![\w-])", text):
            missing.append(command)
    return missing


def test_every_relative_link_resolves():
    problems = [problem for page in doc_pages() for problem in broken_links(page)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_every_docs_page_is_linked_from_both_indexes():
    pages = {page.name for page in DOCS.glob("*.md")} - {"README.md"}
    assert pages, "docs/ has no pages"
    for index in (README, DOCS / "README.md"):
        linked = {
            (index.parent / target.partition("#")[0]).resolve()
            for _, target in relative_links(index)
        }
        missing = sorted(name for name in pages if (DOCS / name).resolve() not in linked)
        assert not missing, f"{index.relative_to(ROOT)} does not link {', '.join(missing)}"


def test_every_command_is_documented():
    commands = command_paths(build_parser())
    assert {"run", "serve", "ratings", "report"} <= set(commands)
    text = "\n".join(page.read_text(encoding="utf-8") for page in doc_pages())
    missing = undocumented(commands, text)
    assert not missing, "commands no page names as `arena <command>`: " + ", ".join(missing)


def test_readme_is_a_front_door():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move reference text to docs/"
    )


# The checks themselves, on small inputs, so a check that can never fail is caught.


@pytest.mark.parametrize(
    "heading, slug",
    [
        ("A five-minute tour", "a-five-minute-tour"),
        ("Ratings: how votes become a leaderboard", "ratings-how-votes-become-a-leaderboard"),
        ("`arena probe`", "arena-probe"),
        ("Publishing `reports/`", "publishing-reports"),
        ("The model: Bradley–Terry on the Elo scale", "the-model-bradleyterry-on-the-elo-scale"),
        (
            "Which battle next (the sampling rule, `arena/sampling.py`)",
            "which-battle-next-the-sampling-rule-arenasamplingpy",
        ),
    ],
)
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug


def test_a_missing_file_or_heading_is_reported(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other\n\n## Real heading\n", encoding="utf-8")
    page.write_text(
        "# Page\n"
        "[ok](other.md#real-heading) [ok too](#page) [web](https://example.com/x)\n"
        "[gone](missing.md) [no anchor](other.md#imagined) [here](#nowhere)\n"
        "```\n[in code](not-checked.md)\n```\n"
        "`[in a code span](not-checked-either.md)`\n",
        encoding="utf-8",
    )
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 3, problems
    assert "missing.md" in problems[0]
    assert "#imagined" in problems[1]
    assert "#nowhere" in problems[2]


def test_a_command_without_a_mention_is_reported():
    parser = argparse.ArgumentParser(prog="arena")
    sub = parser.add_subparsers()
    sub.add_parser("serve")
    db = sub.add_parser("db").add_subparsers()
    db.add_parser("current")
    db.add_parser("upgrade")
    assert command_paths(parser) == ["serve", "db", "db current", "db upgrade"]
    text = "Run `arena serve`; `arena db current` says the revision; arena server is no command."
    assert undocumented(command_paths(parser), text) == ["db upgrade"]
    assert undocumented(["serve"], "arena server, arena serve-all") == ["serve"]
