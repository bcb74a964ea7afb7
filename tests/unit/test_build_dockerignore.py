""".dockerignore rules: patterns, exceptions, **, directories, and which ignore file applies."""

from __future__ import annotations

from pathlib import Path

import pytest

from isobox.builder.dockerignore import clean_path, find_ignore_file, load_ignore_rules, parse_ignore
from isobox.errors import InvalidArgumentError


def excluded(patterns: str, path: str) -> bool:
    return parse_ignore(patterns).excludes(path)


# --- reading the file --------------------------------------------------------------------------------------------

def test_comments_blank_lines_and_whitespace_are_dropped() -> None:
    rules = parse_ignore("\ufeff# comment\n\n   *.log   \n\t!keep.log\n")
    assert [(pattern.text, pattern.exception, pattern.line) for pattern in rules.patterns] == \
        [("*.log", False, 3), ("keep.log", True, 4)]


def test_only_a_hash_at_the_start_of_the_line_is_a_comment() -> None:
    assert [pattern.text for pattern in parse_ignore("  # not a comment\n").patterns] == ["# not a comment"]


@pytest.mark.parametrize(("line", "kept"), [
    ("/build", "build"),
    ("./build/", "build"),
    ("a//b/./c/../d", "a/b/d"),
    ("! /secret ", "secret"),
    ("/", "/"),
])
def test_patterns_are_cleaned_and_lose_a_leading_slash(line: str, kept: str) -> None:
    assert parse_ignore(line).patterns[0].text == kept


@pytest.mark.parametrize(("path", "clean"), [("", "."), ("a/./b/../c", "a/c"), ("/..", "/"), ("../x/..", ".."),
                                             ("a/", "a"), ("//a//", "/a")])
def test_clean_path_is_gos_path_clean(path: str, clean: str) -> None:
    assert clean_path(path) == clean


@pytest.mark.parametrize("line", ["!", "! ", "!/"])
def test_a_lone_exclamation_mark_is_refused(line: str) -> None:
    with pytest.raises(InvalidArgumentError, match="illegal exclusion pattern"):
        parse_ignore(f"ok\n{line}\n")


@pytest.mark.parametrize("pattern", ["[", "a[", "[^bc", "[]a]", "[-]", "[x-]", "[-x]", "[a-b-c]", "x\\", "[z-a]"])
def test_malformed_patterns_are_refused_with_file_and_line(pattern: str) -> None:
    with pytest.raises(InvalidArgumentError, match=r"\.dockerignore:2: bad pattern"):
        parse_ignore(f"ok\n{pattern}\n")


# --- matching ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("pattern", "path", "match"), [
    ("*.go", "main.go", True),
    ("*.go", "cmd/main.go", False),
    ("*/*.go", "cmd/main.go", True),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("a*b", "a/b", False),
    ("[a-c]x", "bx", True),
    ("[^a-c]x", "bx", False),
    ("[\\]a]", "]", True),
    ("[x\\-]", "-", True),
    ("a\\*b", "a*b", True),
    ("a\\*b", "axb", False),
    ("abc.def", "abcXdef", False),
    ("a(b)c+{d}|$", "a(b)c+{d}|$", True),
    ("[a-ζ]*", "αβ", True),
])
def test_go_match_syntax_per_path_element(pattern: str, path: str, match: bool) -> None:
    assert excluded(pattern, path) is match


@pytest.mark.parametrize(("pattern", "path", "match"), [
    ("**", "anything/at/all", True),
    ("**/*.log", "app.log", True),
    ("**/*.log", "var/log/app.log", True),
    ("**/node_modules", "node_modules", True),
    ("**/node_modules", "web/ui/node_modules/x/index.js", True),
    ("**/node_modules", "my_node_modules", False),
    ("logs/**", "logs/a/b.txt", True),
    ("logs/**", "logs", False),
    ("a/**/z", "a/z", True),
    ("a/**/z", "a/b/c/z", True),
    ("a/**/z", "a/b/c/y", False),
    ("**/**/*.txt", "file.txt", True),
    ("**file", "dir/myfile", True),
    ("a**/*.txt", "a/b/c.txt", True),
])
def test_double_star_matches_any_number_of_directories(pattern: str, path: str, match: bool) -> None:
    assert excluded(pattern, path) is match


def test_a_directory_match_excludes_everything_below_it() -> None:
    assert excluded("docs", "docs/guide/intro.md")
    assert excluded("docs/", "docs/README.md")
    assert excluded("*/tmp", "a/tmp/b/c")
    assert not excluded("docs", "mydocs/x")


def test_exception_re_includes_and_the_last_matching_line_wins() -> None:
    rules = parse_ignore("*.md\n!README.md\n")
    assert rules.excludes("CHANGES.md") and not rules.excludes("README.md")
    assert excluded("!README.md\n*.md\n", "README.md")  # the later line wins
    assert excluded("*.md\n!README*.md\nREADME-secret.md\n", "README-secret.md")
    assert not excluded("*.md\n!README*.md\nREADME-secret.md\n", "README-public.md")


def test_exception_below_an_excluded_directory() -> None:
    rules = parse_ignore("docs\n!docs/README.md\n")
    assert not rules.excludes("docs/README.md")
    assert rules.excludes("docs/other.md")
    assert rules.excludes("docs")


def test_exception_of_a_directory_re_includes_what_is_below_it() -> None:
    rules = parse_ignore("**\n!src\n")
    assert not rules.excludes("src/app/main.py")
    assert rules.excludes("build/out")


def test_paths_are_cleaned_before_matching_and_the_root_is_never_excluded() -> None:
    assert excluded("build", "./build/../build/x")
    assert excluded("build", "/build")
    assert not excluded("*", ".")
    assert not excluded("**", "")


def test_no_patterns_exclude_nothing() -> None:
    assert not parse_ignore("").excludes("anything")
    assert not parse_ignore("# only a comment\n").has_exceptions


# --- walking -----------------------------------------------------------------------------------------------------

def test_an_excluded_directory_without_exceptions_is_not_walked() -> None:
    rules = parse_ignore("node_modules\n")
    assert not rules.must_walk("node_modules")
    assert rules.must_walk("src")


def test_an_excluded_directory_with_an_exception_below_it_is_walked() -> None:
    rules = parse_ignore("vendor\n!vendor/keep/LICENSE\n")
    assert rules.must_walk("vendor")
    assert rules.must_walk("vendor/keep")
    assert not rules.must_walk("vendor/other")


def test_wildcard_exceptions_are_followed_element_by_element() -> None:
    rules = parse_ignore("pkg\n!pkg/*/go.mod\n")
    assert rules.must_walk("pkg")
    assert rules.must_walk("pkg/net")
    assert not rules.must_walk("pkg/net/http")


def test_double_star_exceptions_keep_every_excluded_directory_walked() -> None:
    rules = parse_ignore("build\n!**/*.keep\n")
    assert rules.must_walk("build/deep/er")


def test_an_exception_elsewhere_does_not_force_a_walk() -> None:
    assert not parse_ignore("logs\n!src/keep.log\n").must_walk("logs")


# --- which file, and the build files themselves -------------------------------------------------------------------

def test_dockerfile_specific_ignore_file_takes_precedence(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*.log\n")
    (tmp_path / "app").mkdir()
    dockerfile = tmp_path / "app" / "api.Dockerfile"
    dockerfile.write_text("FROM a\n")
    (tmp_path / "app" / "api.Dockerfile.dockerignore").write_text("*.tmp\n")
    assert find_ignore_file(tmp_path, dockerfile) == tmp_path / "app" / "api.Dockerfile.dockerignore"
    rules = load_ignore_rules(tmp_path, dockerfile)
    assert rules.excludes("x.tmp") and not rules.excludes("x.log")  # the context's file is not merged in
    assert rules.source.endswith("api.Dockerfile.dockerignore")


def test_context_ignore_file_applies_otherwise(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*.log\n")
    dockerfile = tmp_path / "Dockerfile"
    assert find_ignore_file(tmp_path, dockerfile) == tmp_path / ".dockerignore"
    assert find_ignore_file(tmp_path) == tmp_path / ".dockerignore"
    assert load_ignore_rules(tmp_path, dockerfile).excludes("debug.log")


def test_no_ignore_file_means_no_rules(tmp_path: Path) -> None:
    assert find_ignore_file(tmp_path, tmp_path / "Dockerfile") is None
    assert load_ignore_rules(tmp_path, tmp_path / "Dockerfile").patterns == ()


def test_an_ignore_directory_is_not_an_ignore_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").mkdir()
    assert find_ignore_file(tmp_path) is None


def test_excluding_the_build_files_still_reads_them_but_leaves_them_out_of_the_context(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    rules = load_ignore_rules(tmp_path, tmp_path / "Dockerfile")
    assert [pattern.text for pattern in rules.patterns] == ["Dockerfile", ".dockerignore"]
    assert rules.excludes("Dockerfile") and rules.excludes(".dockerignore")  # COPY . / does not see them


def test_ignore_file_errors_name_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("fine\n\n[oops\n")
    with pytest.raises(InvalidArgumentError, match=r"\.dockerignore:3: bad pattern '\[oops'"):
        load_ignore_rules(tmp_path)
