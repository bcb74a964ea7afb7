"""isobox's Go templates against what Go's text/template and Docker's functions print for the same input.

Each expected output is Go's, from the text/template and fmt documentation, the docker/cli templates and
their tests, and Go's sources (exec.go, funcs.go, parse.go); the comment beside a case says which rule.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import pytest

from isobox.cli.gotemplate import parse
from isobox.errors import InvalidArgumentError


def render(text: str, data: object = None) -> str:
    return parse(text).render(data)


def error_of(text: str, data: object = None) -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        render(text, data)
    return str(caught.value)


@dataclass(frozen=True)
class Row:
    """A row context like Docker's ContainerContext: fields, a property, and a method taking an argument."""

    Names: str
    Status: str
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def State(self) -> str:
        return self.Status.split()[0].lower()

    def Label(self, name: str) -> str:
        return self.labels.get(name, "")


class Color(enum.StrEnum):
    RED = "red"


INSPECT: dict[str, Any] = {
    "Id": "6bf80924a1b2c3d4",
    "Name": "/web",
    "State": {"Status": "running", "Running": True, "Pid": 4242, "ExitCode": 0, "Health": None},
    "Config": {"Cmd": ["nginx", "-g", "daemon off;"], "Labels": {"com.example.tier": "front", "b": "2"}},
    "Mounts": [{"Source": "/srv/a", "Destination": "/a"}, {"Source": "/srv/b", "Destination": "/b"}],
    "NetworkSettings": {"Networks": {"isobox": {"IPAddress": "10.88.0.2"}, "back": {"IPAddress": "10.89.0.3"}}},
}


# -- text, actions, trimming, comments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain text, no actions", "plain text, no actions"),
        ("a  {{- 1 -}}  b", "a1b"),  # trim markers eat the spaces beside them
        ("a \n\t {{- 1}}\n b", "a1\n b"),  # only the marked side is trimmed, newlines included
        ("{{1 -}}\n\n  x", "1x"),
        ("{{-3}}", "-3"),  # no space after the dash: a negative number, not a trim marker
        ("x{{/* a comment */}}y", "xy"),
        ("x {{- /* trimmed */ -}} y", "xy"),
        ("x{{/* spans\nlines */}}y", "xy"),
        ("{{ 1 }}{{\n2\n}}", "12"),  # spaces and newlines inside an action separate nothing
    ],
)
def test_text_trimming_and_comments(text: str, expected: str) -> None:
    assert render(text) == expected


# -- fields, dot, variables ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{.State.Status}} {{.State.Pid}}", "running 4242"),
        ("{{.Name}}", "/web"),
        ("{{.Missing}}", "<no value>"),  # a key absent from a map
        ("{{.Missing.Deeper}}", "<no value>"),  # fields of "no value" are "no value" too
        ("{{print .Missing}}", "<nil>"),  # passed to a function, it is nil
        ("{{.State.Health}}", "<nil>"),  # a null value
        ("{{.State.Running}}", "true"),
        ("{{index .Config.Labels \"com.example.tier\"}}", "front"),  # keys that are not identifiers
        ("{{index .Mounts 1 \"Source\"}}", "/srv/b"),  # index takes several keys
        ("{{(index .Mounts 0).Destination}}", "/a"),  # fields of a parenthesised pipeline
        ("{{with .State}}{{.Status}} of {{$.Name}}{{end}}", "running of /web"),  # $ is the data
        ("{{range .Mounts}}{{$.Id}}:{{.Source}} {{end}}", "6bf80924a1b2c3d4:/srv/a 6bf80924a1b2c3d4:/srv/b "),
    ],
)
def test_fields_on_maps(text: str, expected: str) -> None:
    assert render(text, INSPECT) == expected


def test_fields_methods_and_properties_of_objects() -> None:
    row = Row("web", "Up 2 hours", {"com.example.tier": "front"})
    assert render("{{.Names}}|{{.State}}|{{.Label \"com.example.tier\"}}|{{.Label \"none\"}}", row) == "web|up|front|"
    assert render("{{.}}", Row("a", "b")) == "{a b map[]}"  # a struct prints as {field values}
    assert render("{{.labels.missing}}", row) == "<no value>"


def test_field_errors_name_the_field_and_type() -> None:
    # exec.go: a struct without the field is an error, unlike a map without the key.
    assert error_of("{{.Nope}}", Row("a", "b")) == (
        'template: :1:2: executing "" at <.Nope>: can\'t evaluate field Nope in type Row'
    )
    assert "can't evaluate field Length in type string" in error_of("{{.Length}}", "text")
    assert "nil pointer evaluating interface {}.Status" in error_of("{{.State.Health.Status}}", INSPECT)
    assert "Names has arguments but cannot be invoked as function" in error_of("{{.Names 1}}", Row("a", "b"))
    assert "Name is not a method but has arguments" in error_of('{{.Name "x"}}', INSPECT)
    assert "wrong number of args for Label: want 1 got 0" in error_of("{{.Label}}", Row("a", "b"))


def test_builtin_methods_of_python_values_are_not_fields() -> None:
    # {{.items}} on a map is its key "items", never dict.items; a string has no fields at all.
    assert render("{{.items}} {{.keys}}", {"items": 3}) == "3 <no value>"
    assert "can't evaluate field upper" in error_of("{{.upper}}", "abc")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{$x := 1}}{{$x}}", "1"),
        ("{{$x := 1}}{{$x = 2}}{{$x}}", "2"),
        ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),  # assignment reaches the outer variable
        ("{{$x := 1}}{{if true}}{{$x := 2}}{{$x}}{{end}}{{$x}}", "21"),  # a declaration inside shadows it
        ("{{with $v := .State.Status}}{{$v}}{{end}}", "running"),
        ("{{range $i, $m := .Mounts}}{{$i}}={{$m.Source}} {{end}}", "0=/srv/a 1=/srv/b "),
        ("{{range $m := .Mounts}}{{$m.Destination}}{{end}}", "/a/b"),  # one variable gets the element
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "b=2;com.example.tier=front;"),
        ("{{$n := len .Mounts}}{{$n}}", "2"),
    ],
)
def test_variables_and_their_scope(text: str, expected: str) -> None:
    assert render(text, INSPECT) == expected


def test_variables_end_with_their_block() -> None:
    assert "undefined variable \"$y\"" in error_of("{{if true}}{{$y := 1}}{{end}}{{$y}}")
    assert "undefined variable \"$z\"" in error_of("{{$z = 1}}")


# -- pipelines and literals ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{{.Name | printf "%s!"}}', "/web!"),  # the value becomes the last argument
        ('{{"put" | printf "%s%s" "out" | printf "%q"}}', '"output"'),  # from the text/template docs
        ('{{printf "%q" (print "out" "put")}}', '"output"'),
        ('{{"\\"output\\""}}', '"output"'),
        ("{{`\"output\"`}}", '"output"'),
        ('{{"tab\\there\\u00e9\\x41\\101"}}', "tab\thereéAA"),
        ("{{'a'}} {{'\\n'}}", "97 10"),  # a character constant is its code point
        ("{{0x1F}} {{0o17}} {{017}} {{0b101}} {{1_000}}", "31 15 15 5 1000"),
        ("{{1.5}} {{1e3}} {{-2}} {{+3}}", "1.5 1000 -2 3"),
        ("{{true}} {{false}}", "true false"),
    ],
)
def test_pipelines_and_literals(text: str, expected: str) -> None:
    assert render(text, INSPECT) == expected


def test_pipeline_misuse() -> None:
    assert "non executable command in pipeline stage 2" in error_of('{{.Name | "x"}}', INSPECT)
    assert "can't give argument to non-function ." in error_of("{{. 1}}", INSPECT)
    assert "nil is not a command" in error_of("{{nil}}")


# -- control structures ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {"b": 1}, "B"),
        ("{{if .a}}A{{else if .b}}B{{else}}C{{end}}", {}, "C"),
        ("{{if and .a .b}}both{{else}}not both{{end}}", {"a": 1, "b": 0}, "not both"),
        ("{{with .a}}{{.}}{{else}}empty{{end}}", {"a": ""}, "empty"),
        ("{{with .a}}{{.}}{{else with .b}}{{.}}{{end}}", {"b": "second"}, "second"),  # Go 1.23
        ("{{range .}}{{.}},{{end}}", [3, 1, 2], "3,1,2,"),
        ("{{range .}}{{.}},{{end}}", {"b": 2, "a": 1, "c": 3}, "1,2,3,"),  # maps in sorted key order
        ("{{range .}}x{{else}}none{{end}}", [], "none"),
        ("{{range .missing}}x{{else}}none{{end}}", {}, "none"),  # no value ranges as an empty map
        ("{{range .}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", [1, 2, 3, 4], "12"),
        ("{{range .}}{{if eq . 2}}{{continue}}{{end}}{{.}}{{end}}", [1, 2, 3], "13"),
        ("{{range 3}}{{.}}{{end}}", None, "012"),  # Go 1.22 ranges over an int
        ("{{range .}}{{range .}}{{.}}{{end}};{{end}}", [[1, 2], [3]], "12;3;"),
        ("{{range $i, $e := .}}{{if $i}}, {{end}}{{$e}}{{end}}", ["a", "b", "c"], "a, b, c"),
    ],
)
def test_if_with_range(text: str, data: object, expected: str) -> None:
    assert render(text, data) == expected


@pytest.mark.parametrize(
    ("value", "is_true"),
    [(0, False), (1, True), (0.0, False), ("", False), ("0", True), ([], False), ([0], True), ({}, False),
     (None, False), (False, False), (Row("a", "b"), True)],
)  # fmt: skip
def test_truth(value: object, is_true: bool) -> None:
    assert render("{{if .}}T{{else}}F{{end}}", value) == ("T" if is_true else "F")


def test_range_refuses_what_cannot_be_iterated() -> None:
    assert "range can't iterate over abc" in error_of("{{range .}}{{end}}", "abc")
    assert "can't use 2 to iterate over more than one variable" in error_of("{{range $i, $v := 2}}{{end}}")


# -- builtins --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" \"z\"}} {{or 0 \"\"}}", "0 2 z "),  # the deciding value itself
        ('{{or .missing "default"}}', "default"),
        ("{{and false (index .l 10)}}", "false"),  # and stops before an argument that would fail
        ("{{not 0}} {{not \"x\"}}", "true false"),
        ("{{len .s}} {{len .l}} {{len .m}}", "6 3 1"),  # len of a string counts bytes
        ("{{index .l 2}} {{index .s 0}}", "30 104"),  # indexing a string gives a byte
        ('{{slice .s 1 3}} {{slice .l 1}} {{slice .l 0 1}}', "é [20 30] [10]"),
        ("{{eq .n 3}} {{eq .n 1 2 3}} {{ne .n 3}} {{eq .s \"héllo\"}}", "true true false true"),
        ("{{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}}", "true true true false"),
        ("{{eq .missing nil}} {{eq .n nil}}", "true false"),
        ('{{print 1 2}}|{{print "a" "b"}}|{{print "a" 1 2 "b"}}|{{println 1 "a"}}', "1 2|ab|a1 2b|1 a\n"),
    ],
)
def test_builtins(text: str, expected: str) -> None:
    assert render(text, {"s": "héllo", "l": [10, 20, 30], "m": {"k": 1}, "n": 3}) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{index .l 3}}", 'executing "" at <index .l 3>: error calling index: index out of range: 3'),
        ("{{index .l \"a\"}}", "error calling index: cannot index slice/array with type string"),
        ("{{index .m 1}}", "error calling index: value has type int; should be string"),
        ("{{index 5 1}}", "error calling index: can't index item of type int"),
        ("{{slice .l 2 1}}", "error calling slice: invalid slice index: 2 > 1"),
        ("{{len 3}}", "error calling len: len of type int"),
        ("{{eq 1 \"a\"}}", "error calling eq: incompatible types for comparison: int and string"),
        ("{{eq 1 1.0}}", "error calling eq: incompatible types for comparison: int and float64"),
        ("{{lt true false}}", "error calling lt: invalid type for comparison"),
        ("{{eq .l .l}}", "error calling eq: non-comparable type [10 20 30]: []interface {}"),
        ("{{eq 1}}", "error calling eq: missing argument for comparison"),
        ("{{not}}", "wrong number of args for not: want 1 got 0"),
        ("{{upper 3}}", "wrong type for value; expected string; got int"),
        ("{{join .l \",\"}}", "wrong type for value; expected []string; got []interface {}"),
    ],
)
def test_builtin_errors(text: str, message: str) -> None:
    assert message in error_of(text, {"l": [10, 20, 30], "m": {"k": 1}})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ('"%s|%d|%v|%t" "x" 42 .l true', "x|42|[1 2]|true"),
        ('"%q %q" "a\\"b\\n" 65', '"a\\"b\\n" \'A\''),
        ('"%x %X %#x %o %b %c %U" 255 255 255 8 5 65 128512', "ff FF 0xff 10 101 A U+1F600"),
        ('"%x % x" "hi" "hi"', "6869 68 69"),
        ('"%f|%.2f|%8.3f|%-8.1f|%e|%g|%g" 1.5 3.14159 3.14159 2.0 1234.5678 0.00001 100000.0',
         "1.500000|3.14|   3.142|2.0     |1.234568e+03|1e-05|100000"),
        ('"[%5s][%-5s][%.2s][%05d][%+d][% d]" "ab" "ab" "abc" 42 5 7', "[   ab][ab   ][ab][00042][+5][ 7]"),
        ('"%v %v" .m .n', "map[a:1 b:[x y]] <nil>"),
        ('"100%%"', "100%"),
        ('"%d %s" "x" .n', "%!d(string=x) %!s(<nil>)"),  # wrong verbs are reported in the output
        ('"%s %s" "only"', "only %!s(MISSING)"),
        ('"%s" "a" 1 .n', "a%!(EXTRA int=1, <nil>)"),
        ('"%d" 1.5', "%!d(float64=1.5)"),
        ('"%*d|%-*d|" 4 7 3 8', "   7|8  |"),
        ('"%!"', "%!!(MISSING)"),  # '!' is taken as the verb, and there is no argument for it
    ],
)
def test_printf_verbs(args: str, expected: str) -> None:
    assert render("{{printf " + args + "}}", {"l": [1, 2], "m": {"b": ["x", "y"], "a": 1}, "n": None}) == expected


def test_printf_without_verb_at_the_end() -> None:
    assert render('{{printf "50%"}}') == "50%!(NOVERB)"


# -- Docker's functions ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "data", "expected"),
    [
        ("{{json .}}", {"b": 1, "a": {"z": [1, 2.5, None, True]}, "c": "x"},
         '{"a":{"z":[1,2.5,null,true]},"b":1,"c":"x"}'),  # compact, keys sorted
        ("{{json .Ports}}", {"Ports": "0.0.0.0:2->8/udp"}, '"0.0.0.0:2->8/udp"'),  # docker/cli #32120
        ("{{json .}}", "<a href='x'>&</a>", "\"<a href='x'>&</a>\""),  # Docker turns HTML escaping off
        ("{{json .}}", 'tab\t"q" \\ \u2028 \x01', '"tab\\t\\"q\\" \\\\ \\u2028 \\u0001"'),
        ("{{json .}}", [3.0, 1e21, 1e-7, 0.000001, 123456789.0, -0.0], "[3,1e+21,1e-7,0.000001,123456789,-0]"),
        ("{{json .missing}} {{json .n}}", {"n": None}, "null null"),
        ("{{json .}}", float("nan"), ""),  # the encoder's error is ignored: nothing is printed
        ("{{json .}}", Row("web", "Up"), '{"Names":"web","Status":"Up","labels":{}}'),
        ("{{json .}}", Color.RED, '"red"'),
        ('{{join (split . ":") "/"}}', "text:with:colon", "text/with/colon"),  # from docker/cli's tests
        ('{{split . ""}}', "abc", "[a b c]"),
        ("{{join .Config.Cmd \" \"}}", INSPECT, "nginx -g daemon off;"),
        ("{{upper .}} {{lower .}}", "Straße ÉTÉ", "STRAßE ÉTÉ straße été"),  # rune by rune: ß has no upper rune
        ('{{title "hello wORLD, it\'s x_y"}}', None, "Hello WORLD, It'S X_y"),  # strings.Title's words
        ("{{truncate . 5}}|{{truncate . 25}}|{{truncate . 30}}", "tupx5xzf6hvsrhnruz5cr8gwp",
         "tupx5|tupx5xzf6hvsrhnruz5cr8gwp|tupx5xzf6hvsrhnruz5cr8gwp"),
        ("[{{pad . 3 3}}]", "abc", "[   abc   ]"),
        ("[{{pad . 3 3}}][{{truncate . 3}}]", "", "[][]"),  # pad leaves an empty text empty
    ],
)
def test_docker_functions(text: str, data: object, expected: str) -> None:
    assert render(text, data) == expected


def test_docker_string_functions_refuse_nil() -> None:
    # docker/cli's own test: truncate and pad of a nil source fail (and of a missing key).
    assert "wrong type for value; expected string; got <nil>" in error_of("{{truncate . 5}}", None)
    assert "invalid value; expected string" in error_of("{{pad .missing 1 1}}", {})


# -- how values print ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"b": 2, "a": [1, "x", None]}, "map[a:[1 x <nil>] b:2]"),
        ([], "[]"),
        ({}, "map[]"),
        (None, "<nil>"),
        (True, "true"),
        (1000000.0, "1e+06"),  # %v of a float64 is the shortest %g: an exponent from 1e+06 and below 1e-4
        (123456.0, "123456"),
        (0.0001, "0.0001"),
        (0.00001, "1e-05"),
        (2.5, "2.5"),
        (3.0, "3"),
        (float("inf"), "+Inf"),
        (Color.RED, "red"),
        ({"k": Color.RED, 2: "two", 1: "one"}, "map[1:one 2:two k:red]"),
    ],
)
def test_printing_follows_go(value: object, expected: str) -> None:
    assert render("{{.}}", value) == expected


# -- parse errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{.Foo}", 'template: :1:6: unexpected "}" in operand'),
        ("{{foo 1}}", 'template: :1:2: function "foo" not defined'),
        ("line one\n  {{.A | nope}}", 'template: :2:9: function "nope" not defined'),
        ("{{.A", "template: :1:4: unclosed action"),
        ("{{if .A}}x", "template: :1:10: unexpected EOF"),
        ("{{end}}", "template: :1:2: unexpected {{end}}"),
        ("{{else}}", "template: :1:2: unexpected {{else}}"),
        ("{{if}}{{end}}", "template: :1:4: missing value for if"),
        ("{{}}", "template: :1:2: missing value for command"),
        ("{{break}}", "template: :1:2: {{break}} outside {{range}}"),
        ("{{range .}}{{else}}{{continue}}{{end}}", "{{continue}} outside {{range}}"),
        ("{{$x}}", 'template: :1:2: undefined variable "$x"'),
        ('{{"abc}}', "template: :1:2: unterminated quoted string"),
        ("{{`abc}}", "unterminated raw quoted string"),
        ("{{/* open", "template: :1:2: unclosed comment"),
        ("{{/* c */ .A}}", "comment ends before closing delimiter"),
        ("{{.A#}}", "bad character U+0023 '#'"),
        ("{{(.A}}", "unclosed left paren"),
        ("{{.A)}}", 'template: :1:4: unexpected ")" in command'),  # the parser meets ')' before the lexer's error
        ("{{3.A}}", "bad number syntax"),
        ('{{"x".A}}', 'unexpected . after term "\\"x\\""'),
        ('{{"bad \\q"}}', "invalid syntax"),
        ("{{range $i, $v, $w := .}}{{end}}", "too many declarations in range"),
        ("{{with $a, $b := .}}{{end}}", "too many declarations in with"),
        ('{{define "x"}}{{end}}', "{{define}} is not supported"),
        ("{{template \"x\"}}", "{{template}} is not supported"),
        ("{{if .A}}{{else}}{{else}}{{end}}", "expected end; found {{else}}"),
    ],
)
def test_parse_errors_name_position_and_expectation(text: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse(text)
    assert message in str(caught.value)


def test_a_template_renders_many_rows() -> None:
    template = parse("{{.Names}}:{{.State}}")
    assert [template.render(Row(n, s)) for n, s in (("a", "Up 1"), ("b", "Exited (0)"))] == ["a:up", "b:exited"]
