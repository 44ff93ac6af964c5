"""The documentation holds together: README.md stays a short page for users that links every page of docs/, every
relative link (and its #anchor) lands, the quick start's two commands are the ones CI runs, and the development
page names every test file and every module, and every `bot/` path or `bot.` module the pages name exists."""
from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

REPO_ROOT = Path(__file__).resolve().parents[1]
README = REPO_ROOT / "README.md"
DOCS = sorted((REPO_ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
README_LIMIT = 15_000  # bytes

INSTALL_AND_SERVE = (
    "python3 -m venv .venv && .venv/bin/pip install -e . && TFBOT_GITHUB_APP_ID=1 TFBOT_WEBHOOK_SECRET=change-me "
    'TFBOT_GITHUB_PRIVATE_KEY="$(openssl genrsa 2048 2>/dev/null)" .venv/bin/tfbot serve --config config.yaml'
)
TEST_SUITE = "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest"

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.S | re.M)
_LINK = re.compile(r"\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t#]*$", re.M)


def prose(path: Path) -> str:
    """The page without its fenced code blocks, where `](` or `# ` mean nothing."""
    return _FENCE.sub("", path.read_text())


def links(path: Path) -> list[str]:
    return _LINK.findall(prose(path))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in _HEADING.findall(prose(path)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_the_docs_pages_exist() -> None:
    assert len(DOCS) >= 5, "docs/ holds the pages README.md links to"


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; keep it under {README_LIMIT}: move detail to docs/"


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)
              if not re.match(r"[a-z]+:", target) and target.split("#")[0]}
    missing = [str(page.relative_to(REPO_ROOT)) for page in DOCS if page.resolve() not in linked]
    assert not missing, f"README.md links no page {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_relative_link_lands(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no file {dest.relative_to(REPO_ROOT) if dest.is_relative_to(REPO_ROOT) else dest}")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.relative_to(REPO_ROOT)}")
    assert not broken, f"{page.relative_to(REPO_ROOT)}: broken links:\n" + "\n".join(broken)


def test_the_quick_start_commands_are_the_ones_ci_runs() -> None:
    readme = README.read_text()
    assert f"```sh\n{INSTALL_AND_SERVE}\n```" in readme
    assert f"```sh\n{TEST_SUITE}\n```" in readme
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert TEST_SUITE.replace("pip install", "pip install -q") in ci, ".ci/run runs the README's test command"


def test_the_development_page_names_every_test_file() -> None:
    text = (REPO_ROOT / "docs" / "development.md").read_text()
    missing = [p.name for p in sorted((REPO_ROOT / "tests").glob("test_*.py")) if f"`{p.name}`" not in text]
    assert not missing, f"docs/development.md's test files table lacks {missing}"


def test_the_development_page_names_every_module() -> None:
    text = (REPO_ROOT / "docs" / "development.md").read_text()
    modules = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "bot").rglob("*.py")
                     if p.name != "__init__.py" or p.parent.name == "handlers")
    missing = [m for m in modules if f"`{m}`" not in text]
    assert not missing, f"docs/development.md's module table lacks {missing}"


def test_every_bot_path_and_module_named_exists() -> None:
    """After files move, a page must not send a reader to bot/runner.py or bot.runner."""
    wrong = []
    for page in PAGES:
        text = page.read_text()
        for path in set(re.findall(r"(?<![\w/.-])bot/[\w/.*-]*[\w/*]", text)):
            if not (any(REPO_ROOT.glob(path.rstrip("/"))) if "*" in path else (REPO_ROOT / path).exists()):
                wrong.append(f"{page.name}: {path}")
        for dotted in set(re.findall(r"`(bot(?:\.\w+)+)", text)):
            if not _resolves(dotted):
                wrong.append(f"{page.name}: {dotted}")
    assert not wrong, "names that do not exist:\n" + "\n".join(sorted(wrong))


def _resolves(dotted: str) -> bool:
    """`bot.a.b` is a module, or a module's attribute (`bot.jobs.handle_delivery`, `bot.x.Class.method`)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            if not hasattr(obj, name):
                return False
            obj = getattr(obj, name)
        return True
    return False


def test_the_benchmark_table_is_the_rendering_of_bench_results_json() -> None:
    from bench.report import marked_block, read_json, render_results_markdown

    block = marked_block((REPO_ROOT / "docs" / "benchmarks.md").read_text())
    assert block, "docs/benchmarks.md holds the block `python -m bench --markdown` prints"
    meta, cases = read_json(REPO_ROOT / "bench" / "results.json")
    assert not meta["quick"], "the page shows a full run, not --quick"
    assert block == render_results_markdown(meta, cases), \
        "docs/benchmarks.md's table differs from bench/results.json: paste `python -m bench --markdown` over it"
    rows = [line for line in block.splitlines() if line.startswith("| ") and not line.startswith("| case |")]
    assert rows and all(line.split(" | ")[-2] and line.rstrip(" |").split(" | ")[-1] for line in rows)
