"""Variable expansion and word splitting with Docker's shell-word rules (isobox.builder.expand)."""

from __future__ import annotations

import pytest

from isobox.builder.expand import ExpansionError, Lexer, expand_heredoc, expand_word, expand_words

ENV = {"HOME": "/root", "EMPTY": "", "NAME": "world", "GREETING": "hello there", "KOREAN": "한국어"}


def word(text: str, env: dict[str, str] | None = None, escape: str = "\\") -> str:
    return expand_word(text, ENV if env is None else env, escape=escape)


@pytest.mark.parametrize(("text", "expected"), [
    ("$HOME", "/root"),
    ("${HOME}", "/root"),
    ("x${NAME}y", "xworldy"),
    ("$NAME.txt", "world.txt"),
    ("$KOREAN!", "한국어!"),
    ("a${MISSING}b", "ab"),
    ("a$MISSING", "a"),
])
def test_plain_references_expand_and_unset_ones_vanish(text: str, expected: str) -> None:
    assert word(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("$", "$"),
    ("$.", "$."),
    ("a$/b", "a$/b"),
    ("price: 5$", "price: 5$"),
])
def test_a_dollar_not_followed_by_a_name_stays(text: str, expected: str) -> None:
    assert word(text) == expected


@pytest.mark.parametrize("text", ["$1", "${2}", "$999", "$@", "${*}", "$#", "$?", "$-", "$$", "$!", "$0"])
def test_positional_and_special_parameters_are_never_set(text: str) -> None:
    assert word(text) == ""


def test_positional_parameter_reads_every_digit_and_leaves_the_rest() -> None:
    assert word("$001abc") == "abc"
    assert word("a$1x") == "ax"
    assert word("$@@@") == "@@"


@pytest.mark.parametrize(("text", "expected"), [
    ("${MISSING:-fallback}", "fallback"),
    ("${EMPTY:-fallback}", "fallback"),
    ("${NAME:-fallback}", "world"),
    ("${MISSING-fallback}", "fallback"),
    ("${EMPTY-fallback}", ""),
    ("${NAME-fallback}", "world"),
    ("${1:-positional}", "positional"),
])
def test_default_operators_tell_unset_from_empty(text: str, expected: str) -> None:
    assert word(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("${NAME:+alt}", "alt"),
    ("${EMPTY:+alt}", ""),
    ("${MISSING:+alt}", ""),
    ("${NAME+alt}", "alt"),
    ("${EMPTY+alt}", "alt"),
    ("${MISSING+alt}", ""),
])
def test_alternative_operators_tell_unset_from_empty(text: str, expected: str) -> None:
    assert word(text) == expected


def test_words_of_operators_nest_and_expand() -> None:
    assert word("${MISSING:-${ALSO_MISSING:-$NAME}}") == "world"
    assert word("${NAME:+<${HOME}>}") == "</root>"
    assert word("${MISSING:-a b  c}") == "a b  c"
    assert word("${MISSING:-'quoted $NAME'}") == "quoted $NAME"
    assert word("${NAME:+${HOME}:}x") == "/root:x"


def test_required_operator_raises_with_the_message() -> None:
    with pytest.raises(ExpansionError, match="MISSING: set it with --build-arg world"):
        word("${MISSING:?set it with --build-arg $NAME}")
    with pytest.raises(ExpansionError, match="EMPTY: is not allowed to be empty"):
        word("${EMPTY:?}")
    with pytest.raises(ExpansionError, match="MISSING: is not allowed to be unset"):
        word("${MISSING?}")
    assert word("${EMPTY?}") == ""
    assert word("${NAME:?}") == "world"


@pytest.mark.parametrize(("text", "value", "expected"), [
    ("${V#*/}", "a/b/c", "b/c"),
    ("${V##*/}", "a/b/c", "c"),
    ("${V%/*}", "a/b/c", "a/b"),
    ("${V%%/*}", "a/b/c", "a"),
    ("${V#x}", "abc", "abc"),
    ("${V%.tar.gz}", "app.tar.gz", "app"),
    ("${V#?}", "abc", "bc"),
    ("${V#\\*}", "*star", "star"),
])
def test_prefix_and_suffix_removal_shortest_and_longest(text: str, value: str, expected: str) -> None:
    assert word(text, {"V": value}) == expected


@pytest.mark.parametrize(("text", "value", "expected"), [
    ("${V/o/0}", "foo boo", "f0o boo"),
    ("${V//o/0}", "foo boo", "f00 b00"),
    ("${V//\\//-}", "a/b/c", "a-b-c"),
    ("${V/http:\\/\\//https://}", "http://x", "https://x"),
    ("${V/b*/X}", "abcbd", "aX"),
])
def test_replacement_of_first_and_every_match(text: str, value: str, expected: str) -> None:
    assert word(text, {"V": value}) == expected


def test_replacement_text_is_inserted_literally() -> None:
    assert word("${V/a/$R}", {"V": "abc", "R": "<$1>"}) == "<$1>bc"  # no regex group reference


@pytest.mark.parametrize("text", [
    "${}", "${", "${NAME", "${:-x}", "${NAME:=x}", "${NAME=x}", "${NAME:x}", "${.}", "${{NAME}", "${NAME:#x}",
    "${NAME:%x}", "${NAME//x}", "${NAME:-x", "${NAME#\\x}",
])
def test_malformed_substitutions_are_refused(text: str) -> None:
    with pytest.raises(ExpansionError):
        word(text)


def test_a_brace_after_a_complete_reference_is_literal() -> None:
    assert word("${NAME}}") == "world}"
    assert word("${MISSING:-a {b}") == "a {b"


@pytest.mark.parametrize(("text", "expected"), [
    ("'$NAME'", "$NAME"),
    ("'${NAME:-x}'", "${NAME:-x}"),
    ("'a\\b'", "a\\b"),
    ("'say \"hi\"'", 'say "hi"'),
    ("it''s", "its"),
])
def test_single_quotes_keep_everything_literal(text: str, expected: str) -> None:
    assert word(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ('"$NAME"', "world"),
    ('"a  $GREETING"', "a  hello there"),
    ('"\\$NAME"', "$NAME"),
    ('"a\\"b"', 'a"b'),
    ('"a\\\\b"', "a\\b"),
    ('"a\\tb"', "a\\tb"),
    ("\"it's\"", "it's"),
])
def test_double_quotes_expand_and_escape_only_quote_dollar_and_escape(text: str, expected: str) -> None:
    assert word(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("\\$NAME", "$NAME"),
    ("\\${NAME}", "${NAME}"),
    ("a\\ b", "a b"),
    ("a\\tb", "atb"),
    ("\\'x", "'x"),
    ("end\\", "end"),
    ("double\\\\", "double\\"),
])
def test_escape_character_makes_the_next_character_literal(text: str, expected: str) -> None:
    assert word(text) == expected


def test_backtick_escape_replaces_backslash() -> None:
    assert word("`$NAME", escape="`") == "$NAME"
    assert word("C:\\dir\\$NAME", escape="`") == "C:\\dir\\world"
    assert word('"a`"b"', escape="`") == 'a"b'


@pytest.mark.parametrize("text", ["'open", '"open', 'a"b\\"', "x\\\\'y"])
def test_unterminated_quotes_are_refused(text: str) -> None:
    with pytest.raises(ExpansionError, match="matching"):
        word(text)


def test_error_names_the_word() -> None:
    with pytest.raises(ExpansionError, match=r"cannot expand '\$\{X:\?no\}'"):
        word("${X:?no}")


def test_words_split_at_unquoted_whitespace_after_expansion() -> None:
    env = {"LIST": "80 443", "SPACED": "  a b  "}
    assert expand_words("$LIST 8080/udp", env) == ["80", "443", "8080/udp"]
    assert expand_words('"$LIST"', env) == ["80 443"]
    assert expand_words("x${SPACED}y", env) == ["x", "a", "b", "y"]
    assert expand_words('x"${SPACED}"y', env) == ["x  a b  y"]
    assert expand_words("a\\ b c", env) == ["a b", "c"]
    assert expand_words('a "" b', env) == ["a", "b"]


def test_words_keep_text_before_a_nested_default() -> None:
    assert expand_words("pre${MISSING:-mid}post", {}) == ["premidpost"]


def test_lexer_options_keep_quotes_escapes_and_unset_references() -> None:
    lexer = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True)
    assert lexer.word("'$A' \"b\" \\c $UNSET ${UNSET:-x} ${SET}", {"SET": "s"}) == \
        "'$A' \"b\" \\c $UNSET ${UNSET:-x} s"


def test_heredoc_bodies_expand_variables_but_keep_quotes() -> None:
    assert expand_heredoc("echo '$NAME' \"$HOME\"\n", ENV) == "echo 'world' \"/root\"\n"
    assert expand_heredoc("cost: \\$5 for ${NAME}\n", ENV) == "cost: $5 for world\n"
