"""The state file of handled articles: durable, bounded, replaced whole."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from triggers.news.state import SeenArticles, StateError


def test_seen_articles_survive_a_reload(tmp_path: Path) -> None:
    path = tmp_path / "news" / "t.seen"
    seen = SeenArticles.load(path)
    assert len(seen) == 0
    seen.add("a1")
    seen.add("a2")
    again = SeenArticles.load(path)
    assert "a1" in again and "a2" in again and "a3" not in again
    assert sorted(p.name for p in path.parent.iterdir()) == ["t.seen"]  # no temp file left


def test_seen_articles_keep_only_the_most_recent(tmp_path: Path) -> None:
    path = tmp_path / "t.seen"
    seen = SeenArticles.load(path, limit=3)
    for i in range(5):
        seen.add(f"a{i}")
    seen.add("a2")  # seen again: now the most recent
    seen.add("a5")
    reloaded = SeenArticles.load(path, limit=3)
    assert [a for a in ("a0", "a1", "a2", "a3", "a4", "a5") if a in reloaded] == ["a2", "a4", "a5"]


def test_seen_articles_file_with_comments_and_blank_lines_loads(tmp_path: Path) -> None:
    path = tmp_path / "t.seen"
    path.write_text("# a comment\n\n  a1  \na2\n")
    seen = SeenArticles.load(path)
    assert "a1" in seen and "a2" in seen and len(seen) == 2


def test_seen_articles_unusable_file_raises_state_error(tmp_path: Path) -> None:
    directory = tmp_path / "t.seen"
    directory.mkdir()
    with pytest.raises(StateError, match="--state"):
        SeenArticles.load(directory)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_seen_articles_read_only_directory_raises_state_error(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(StateError, match="writable"):
            SeenArticles.load(tmp_path / "t.seen")
    finally:
        tmp_path.chmod(0o700)
