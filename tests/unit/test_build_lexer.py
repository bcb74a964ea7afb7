"""Physical lines to logical instructions: directives, comments, continuations, heredocs (isobox.builder.lexer)."""

from __future__ import annotations

import pytest

from isobox.builder.lexer import Directives, Heredoc, parse_heredoc_word, scan
from isobox.builder.source import DockerfileError


def texts(dockerfile: str) -> list[str]:
    return [line.text for line in scan(dockerfile).lines]


# --- parser directives -------------------------------------------------------------------------------------------

def test_directives_at_the_top_are_read() -> None:
    scanned = scan("# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\n")
    assert scanned.directives == Directives("docker/dockerfile:1", "`", "skip=all")
    assert texts("# syntax=x\nFROM a\n") == ["FROM a"]


def test_directive_names_are_case_insensitive_and_spaces_around_equals_allowed() -> None:
    assert scan("#   ESCAPE  =  `  \nFROM a\n").directives.escape == "`"


def test_escape_defaults_to_backslash() -> None:
    assert scan("FROM a\n").directives == Directives()


def test_a_directive_after_an_instruction_is_a_comment() -> None:
    scanned = scan("FROM a\n# escape=`\nRUN x \\\n  y\n")
    assert scanned.directives.escape == "\\"
    assert texts("FROM a\n# escape=`\nRUN x \\\n  y\n") == ["FROM a", "RUN x   y"]


def test_a_comment_ends_the_directives() -> None:
    assert scan("# a comment\n# escape=`\nFROM a\n").directives.escape == "\\"


def test_a_blank_line_ends_the_directives() -> None:
    assert scan("\n# escape=`\nFROM a\n").directives.escape == "\\"
    assert scan("# syntax=x\n\n# escape=`\nFROM a\n").directives == Directives(syntax="x")


def test_an_unknown_directive_is_a_comment_and_ends_the_directives() -> None:
    scanned = scan("# colour=blue\n# escape=`\nFROM a\n")
    assert scanned.directives == Directives()
    assert texts("# colour=blue\nFROM a\n") == ["FROM a"]


def test_a_directive_may_appear_only_once() -> None:
    with pytest.raises(DockerfileError, match="only one escape parser directive") as caught:
        scan("# escape=`\n# escape=\\\nFROM a\n")
    assert caught.value.line == 2


def test_escape_accepts_only_backslash_or_backtick() -> None:
    with pytest.raises(DockerfileError, match="invalid escape token") as caught:
        scan("# escape=$\nFROM a\n")
    assert caught.value.line == 1


def test_byte_order_mark_is_ignored() -> None:
    scanned = scan("\ufeff# escape=`\nFROM a\n")
    assert scanned.directives.escape == "`"


# --- comments and blank lines -------------------------------------------------------------------------------------

def test_comments_and_blank_lines_between_instructions_are_dropped() -> None:
    assert texts("# top\n\nFROM a\n   # indented comment\n\n\tRUN b # not a comment\n") == \
        ["FROM a", "RUN b # not a comment"]


def test_leading_whitespace_before_an_instruction_is_ignored() -> None:
    lines = scan("   FROM a\n\t\tRUN b\n").lines
    assert [line.text for line in lines] == ["FROM a", "RUN b"]


def test_crlf_line_endings_are_accepted() -> None:
    assert texts("FROM a\r\nRUN b \\\r\n  c\r\n") == ["FROM a", "RUN b   c"]


# --- continuations -----------------------------------------------------------------------------------------------

def test_continuation_joins_lines_as_they_are() -> None:
    assert texts("RUN echo hello\\\n  world\n") == ["RUN echo hello  world"]
    assert texts("RUN a \\\nb\n") == ["RUN a b"]
    assert texts("RUN a\\\nb\n") == ["RUN ab"]


def test_spaces_after_the_continuation_character_are_allowed() -> None:
    assert texts("RUN a \\  \t\nb\n") == ["RUN a b"]


def test_comments_inside_a_continuation_are_dropped() -> None:
    assert texts("RUN a \\\n# note \\\n    # indented note\n  b\n") == ["RUN a   b"]


def test_blank_lines_inside_a_continuation_are_dropped_with_a_warning() -> None:
    scanned = scan("FROM x\nRUN a \\\n\n   \n  b\n")
    assert [line.text for line in scanned.lines] == ["FROM x", "RUN a   b"]
    assert len(scanned.warnings) == 1
    assert "empty continuation line" in scanned.warnings[0].message


def test_a_line_of_only_the_continuation_character_continues() -> None:
    assert texts("ENV E hello\\\n\\\nworld\n") == ["ENV E helloworld"]


def test_an_escaped_escape_character_does_not_continue() -> None:
    assert texts("ENV C trailing\\\\\nENV D next\n") == ["ENV C trailing\\\\", "ENV D next"]


def test_continuation_at_end_of_file_ends_the_instruction() -> None:
    assert texts("FROM a\nRUN something \\") == ["FROM a", "RUN something "]


def test_backtick_escape_is_the_continuation_character() -> None:
    dockerfile = "# escape=`\nFROM a\nRUN dir C:\\ `\n  /w\nCOPY a\\ b\n"
    assert texts(dockerfile) == ["FROM a", "RUN dir C:\\   /w", "COPY a\\ b"]


def test_with_backtick_escape_a_trailing_backslash_does_not_continue() -> None:
    assert texts("# escape=`\nFROM a\nWORKDIR C:\\\nRUN b\n") == ["FROM a", "WORKDIR C:\\", "RUN b"]


def test_line_numbers_cover_the_whole_instruction() -> None:
    lines = scan("\n# c\nFROM a\n\nRUN one \\\n  # c\n  two \\\n  three\nCMD x\n").lines
    assert [(line.start_line, line.end_line) for line in lines] == [(3, 3), (5, 8), (9, 9)]


# --- heredocs ----------------------------------------------------------------------------------------------------

def heredocs(dockerfile: str) -> list[tuple[Heredoc, ...]]:
    return [line.heredocs for line in scan(dockerfile).lines]


def test_heredoc_body_follows_the_instruction() -> None:
    lines = scan("FROM a\nRUN <<EOF\necho one\necho two\nEOF\nCMD x\n").lines
    assert [line.text for line in lines] == ["FROM a", "RUN <<EOF", "CMD x"]
    assert lines[1].heredocs == (Heredoc("EOF", "echo one\necho two\n"),)
    assert (lines[1].start_line, lines[1].end_line) == (2, 5)


def test_heredoc_body_keeps_comments_blank_lines_and_indentation() -> None:
    body = "# kept\n\n\tindented\necho x \\\n"
    assert heredocs(f"RUN <<EOF\n{body}EOF\n")[0][0].content == body


def test_dash_heredoc_strips_leading_tabs_also_before_the_terminator() -> None:
    doc = heredocs("RUN <<-EOT\n\tone\n\t\ttwo\n\tEOT\n")[0][0]
    assert doc.chomp
    assert doc.content == "\tone\n\t\ttwo\n"
    assert doc.body == "one\ntwo\n"


def test_plain_heredoc_needs_the_terminator_unindented() -> None:
    with pytest.raises(DockerfileError, match="unterminated heredoc"):
        scan("RUN <<EOT\n\tone\n\tEOT\n")


@pytest.mark.parametrize(("word", "name", "expand"), [
    ("<<EOF", "EOF", True),
    ("<<'EOF'", "EOF", False),
    ('<<"EOF"', "EOF", False),
    ("<<E'O'F", "EOF", False),
    ("<<E\\'OF", "E'OF", True),
    ("<<'E'O\\'F", "EO'F", False),
    ("<<$EOF", "$EOF", True),
    ("<< EOF", "EOF", True),
    ("<<-'EOF'", "EOF", False),
])
def test_quoting_any_part_of_the_delimiter_turns_expansion_off(word: str, name: str, expand: bool) -> None:
    heredoc = parse_heredoc_word(word)
    assert heredoc is not None
    assert (heredoc.name, heredoc.expand) == (name, expand)


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_words_that_are_no_heredoc(word: str) -> None:
    assert parse_heredoc_word(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'"])
def test_unbalanced_quotes_in_a_delimiter_are_refused(word: str) -> None:
    with pytest.raises(DockerfileError, match="invalid heredoc delimiter"):
        parse_heredoc_word(word)


def test_file_descriptor_before_the_heredoc_is_kept() -> None:
    assert heredocs("RUN 3<<EOF\nx\nEOF\n")[0][0].fd == 3


def test_several_heredocs_on_one_line_take_their_bodies_in_order() -> None:
    docs = heredocs("COPY <<ONE <<TWO /dest/\nfirst\nONE\nsecond\nTWO\n")[0]
    assert [(doc.name, doc.content) for doc in docs] == [("ONE", "first\n"), ("TWO", "second\n")]


def test_a_body_may_contain_the_other_delimiter() -> None:
    docs = heredocs("COPY <<X <<Y /d\nY\nX\nX\nY\n")[0]
    assert [(doc.name, doc.content) for doc in docs] == [("X", "Y\n"), ("Y", "X\n")]


def test_heredoc_with_flags_and_arguments_after_it() -> None:
    line = scan("RUN --mount=type=cache,target=/c <<EOF python3\nprint(1)\nEOF\n").lines[0]
    assert line.heredocs == (Heredoc("EOF", "print(1)\n"),)


def test_heredoc_under_onbuild_is_collected() -> None:
    assert heredocs("ONBUILD COPY <<EOF /x\nhi\nEOF\n")[0] == (Heredoc("EOF", "hi\n"),)


@pytest.mark.parametrize("line", ['RUN "<<EOF"', "RUN '<<EOF'", 'RUN ["cat", "<<EOF"]', "USER <<EOF",
                                  "ENV A=<<EOF", "CMD <<EOF"])
def test_heredoc_only_for_run_copy_add_in_shell_form_and_not_quoted(line: str) -> None:
    lines = scan(f"{line}\nEOF\n").lines
    assert lines[0].heredocs == ()
    assert [item.text for item in lines] == [line, "EOF"]


def test_unterminated_heredoc_names_the_instruction_line() -> None:
    with pytest.raises(DockerfileError, match="unterminated heredoc 'EOF'") as caught:
        scan("FROM a\n\nRUN <<EOF\necho never ends\n")
    assert caught.value.line == 3
    assert "Dockerfile:3" in str(caught.value)
