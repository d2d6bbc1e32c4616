"""The docs cover the code: the CLI reference is generated and current, every option and hook is
documented, every built-in plugin is named in the docs, and links between documents resolve."""

import functools
import inspect
import re
from pathlib import Path

from noisyctl import hookspecs, plugins
from noisyctl.cli import create_app
from noisyctl.cli.reference import cli_markdown, commands

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"


def test_cli_reference_is_generated_from_the_current_code():
    generated = cli_markdown(create_app())
    assert (DOCS / "cli.md").read_text() == generated, \
        "docs/cli.md is stale: python -m noisyctl.cli.reference > docs/cli.md"


def test_every_cli_option_has_help():
    undocumented = [f"{name} {param.name}" for name, command in commands(create_app()) for param in command.params
                    if not " ".join((getattr(param, "help", None) or "").split())]
    assert not undocumented, f"options without help: {undocumented}"


def test_every_hook_is_documented():
    hooks = [name for name in vars(plugins.loaded().manager.hook) if not name.startswith("_")]
    text = (DOCS / "plugins.md").read_text()
    assert hooks and all(f"`{hook}(" in text for hook in hooks), hooks
    for hook in hooks:
        assert inspect.getdoc(getattr(hookspecs, hook)), hook


def test_every_builtin_plugin_is_named_in_the_docs():
    text = "\n".join(p.read_text() for p in DOCS.glob("*.md"))
    registry = plugins.registry()
    missing = [f"{kind} {name}" for kind in ("dataset", "model", "noise", "detector", "corrector", "strategy")
               for name in registry.names(kind)
               if registry.get(kind, name).origin[0] == "noisyctl" and f"`{name}`" not in text
               and f"`{name}:" not in text and f" {name} " not in text]
    assert not missing, missing


@functools.cache
def heading_anchors(page: Path) -> frozenset[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces as
    hyphens, a repeated heading numbered from -1. Read once a page, however many links name it."""
    anchors, seen, in_code = set(), {}, False
    for line in page.read_text().splitlines():
        in_code ^= line.startswith("```")
        heading = None if in_code else re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return frozenset(anchors)


def test_links_between_documents_resolve():
    """Every relative link names a file that exists, and every #anchor a heading on its page."""
    broken = []
    for page in [REPO / "README.md", REPO / "benchmarks" / "README.md", *DOCS.glob("*.md")]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if "://" in target:
                continue
            linked = page.parent / target if target else page
            if not linked.exists():
                broken.append(f"{page.name} -> {target}")
            elif anchor and anchor not in heading_anchors(linked.resolve()):
                broken.append(f"{page.name} -> {target}#{anchor}")
    assert not broken, broken
