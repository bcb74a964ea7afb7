"""Which parts of which instruction the builder expands, and expanding them (the Dockerfile reference,
"Environment replacement").

Expanded by the builder: ADD, COPY (sources, destination, --chown, --chmod, ADD --checksum; heredoc
files unless their delimiter was quoted), ENV and LABEL (keys and values), EXPOSE (split into words),
FROM (with the global ARGs only, done by the plan), STOPSIGNAL, USER, VOLUME, WORKDIR, and the option
values of RUN --mount. RUN, CMD, ENTRYPOINT, SHELL and HEALTHCHECK are left to the shell at run time;
ONBUILD triggers are expanded when they run, in the build that uses the image; ARG defaults are
expanded by the plan as it declares them. COPY --from and --exclude are never expanded.

Every variable of one instruction takes its value from before that instruction:
``ENV a=bye b=$a`` sets b to the previous a.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from isobox.builder import instructions as ins
from isobox.builder.expand import Lexer, expand_heredoc, expand_word, expand_words
from isobox.builder.mounts import parse_mount

__all__ = ["expand_instruction"]


def expand_instruction(instruction: ins.Instruction, env: Mapping[str, str], escape: str) -> ins.Instruction:
    """``instruction`` with its variables expanded against ``env``; raises ExpansionError or, for a
    RUN --mount that is malformed once expanded, InvalidArgumentError.
    """

    def word(text: str) -> str:
        return expand_word(text, env, escape=escape)

    if isinstance(instruction, ins.Env | ins.Label):
        pairs = tuple(ins.KeyValue(word(pair.key), word(pair.value), pair.legacy) for pair in instruction.pairs)
        return replace(instruction, pairs=pairs)
    if isinstance(instruction, ins.Expose):
        ports = tuple(port for text in instruction.ports for port in expand_words(text, env, escape=escape))
        return replace(instruction, ports=ports)
    if isinstance(instruction, ins.Volume):
        return replace(instruction, paths=tuple(word(path) for path in instruction.paths))
    if isinstance(instruction, ins.User):
        return replace(instruction, user=word(instruction.user))
    if isinstance(instruction, ins.Workdir):
        return replace(instruction, path=word(instruction.path))
    if isinstance(instruction, ins.StopSignal):
        return replace(instruction, signal=word(instruction.signal))
    if isinstance(instruction, ins.Copy):
        return replace(instruction, sources=tuple(word(source) for source in instruction.sources),
                       dest=word(instruction.dest), chown=word(instruction.chown), chmod=word(instruction.chmod),
                       inline=_inline(instruction.inline, env))
    if isinstance(instruction, ins.Add):
        return replace(instruction, sources=tuple(word(source) for source in instruction.sources),
                       dest=word(instruction.dest), chown=word(instruction.chown), chmod=word(instruction.chmod),
                       checksum=word(instruction.checksum), inline=_inline(instruction.inline, env))
    if isinstance(instruction, ins.Run) and instruction.mounts:
        lexer = Lexer(escape)
        mounts = tuple(parse_mount(mount.text, lambda text: lexer.word(text, env)) for mount in instruction.mounts)
        return replace(instruction, mounts=mounts)
    return instruction


def _inline(files: tuple[ins.InlineFile, ...], env: Mapping[str, str]) -> tuple[ins.InlineFile, ...]:
    return tuple(replace(file, content=expand_heredoc(file.content, env)) if file.expand else file
                 for file in files)
