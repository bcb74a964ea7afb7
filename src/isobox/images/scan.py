"""Image risk report: what in an image raises the risk of running it, read from its unpacked layers.

Reported, each with a severity: the default user when it is root, setuid and setgid files, world-writable
paths (sticky directories such as /tmp excepted), secrets in environment values and in files (private keys,
cloud and registry credentials, tokens: files whose name says they hold one are read, up to 64 KiB, and
reported only when their content has a secret's shape), and the packages of the image's dpkg or apk
database (an rpm database is noted, not read). The isolation policy can use the findings (``scan = [...]``).

The layers are read as overlayfs would merge them (topmost wins) without mounting anything and
without following any symlink the image contains: a whiteout (0/0 character device) or a non-directory
hides what lower layers have at and below its path, and an opaque directory (the
trusted.overlay.opaque xattr that unpack.py sets for ``.wh..wh..opq``) hides the lower layers' content
of that directory. Database files are opened with O_NOFOLLOW and must be regular files.
"""

from __future__ import annotations

import enum
import fnmatch
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field

from isobox.model.image_config import ImageConfig
from isobox.model.policy import FindingKind

MAX_LISTED = 50  # paths listed per finding kind; the counts are always complete
MAX_DB_BYTES = 64 * 1024 * 1024  # a dpkg status file of a large image is a few MB
OPAQUE_XATTR = "trusted.overlay.opaque"

# Files the scan reads, if the merged image has them (paths relative to the image root).
PASSWD = "etc/passwd"
DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d"  # distroless images: one status file per package
APK_INSTALLED = "lib/apk/db/installed"
RPM_DATABASES = ("var/lib/rpm/rpmdb.sqlite", "var/lib/rpm/Packages", "usr/lib/sysimage/rpm/rpmdb.sqlite",
                 "usr/lib/sysimage/rpm/Packages")
MAX_SECRET_FILE_BYTES = 64 * 1024

# Names of files that hold credentials or keys (fnmatch on the file name), read for a secret's shape.
SECRET_FILE_NAMES = ("id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "*_key", "*.key", "*.pem", "*.p8", ".netrc",
                     ".git-credentials", ".npmrc", ".pypirc", "credentials", "config.json", ".env", "*.env",
                     ".htpasswd", "*.token", "token")
# What a secret in a file looks like: a private key, AWS/GitHub/Slack/JWT tokens, auth entries of npm, netrc,
# Docker configs and git credential stores, AWS credentials.
_SECRET_CONTENT = re.compile(
    r"(-----BEGIN [A-Z ]*PRIVATE KEY-----|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.|_authToken\s*=\s*\S{8,}|^\s*machine\s+\S+\s+login\s+\S+\s+password"
    r"|\"auth\"\s*:\s*\"[A-Za-z0-9+/=]{8,}\"|https?://[^:/\s]+:[^@/\s]{6,}@|aws_secret_access_key\s*=\s*\S{16,})",
    re.MULTILINE,
)


class Severity(enum.StrEnum):
    """How much a finding raises the risk of running the image (the report lists the worst first)."""

    HIGH = "high"  # a secret anyone with the image has
    MEDIUM = "medium"  # a way to more privilege inside: root by default, setuid files, world-writable paths
    LOW = "low"  # setgid files: a group's rights


SEVERITIES = {
    FindingKind.SECRET_ENV: Severity.HIGH, FindingKind.SECRET_FILE: Severity.HIGH,
    FindingKind.RUNS_AS_ROOT: Severity.MEDIUM, FindingKind.SETUID: Severity.MEDIUM,
    FindingKind.WORLD_WRITABLE: Severity.MEDIUM, FindingKind.SETGID: Severity.LOW,
}

_SECRET_KEY = re.compile(
    r"(pass(word|wd)?|secret|token|api_?key|access_?key|private_?key|credential|auth)", re.IGNORECASE
)
_SECRET_VALUE = re.compile(
    r"(AKIA[0-9A-Z]{16}|-----BEGIN [A-Z ]*PRIVATE KEY-----|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.)"
)
# Values that name where a secret is rather than being one.
_NOT_A_SECRET = re.compile(r"^(/|\$\{?|file:|true$|false$|none$|null$|0$|1$)", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    subject: str  # a path in the image, an environment key, or a user
    detail: str
    severity: Severity = Severity.MEDIUM


@dataclass(frozen=True)
class Package:
    name: str
    version: str
    source: str  # "dpkg" or "apk"


@dataclass(frozen=True)
class ScanReport:
    image: str
    image_id: str
    user: str  # the image's default user as written ("" = root)
    findings: tuple[Finding, ...]  # at most MAX_LISTED of each kind
    counts: tuple[tuple[str, int], ...]  # every finding kind found, with its complete count
    packages: tuple[Package, ...]
    entries: int  # files, directories and links in the merged image
    package_databases: tuple[str, ...] = ()  # where packages were read: "dpkg", "apk"
    unread_databases: tuple[str, ...] = ()  # package databases present but not read: "rpm"

    @property
    def kinds(self) -> frozenset[str]:
        return frozenset(kind for kind, _ in self.counts)


@dataclass
class _Collector:
    findings: list[Finding] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, kind: FindingKind, subject: str, detail: str) -> None:
        seen = self.counts.get(kind.value, 0)
        self.counts[kind.value] = seen + 1
        if seen < MAX_LISTED:
            self.findings.append(Finding(kind, subject, detail, SEVERITIES[kind]))


def merged_entries(layers: tuple[str, ...]) -> Iterator[tuple[str, str, os.stat_result]]:
    """(path in the image, host path, lstat) of each entry of the merged image, topmost layer first."""
    emitted: set[str] = set()
    blocked: set[str] = set()  # paths whose content in lower layers is hidden
    for layer in reversed(layers):
        hidden_here: set[str] = set()
        for current, dirs, files in os.walk(layer, followlinks=False):
            rel_dir = os.path.relpath(current, layer)
            rel_dir = "" if rel_dir == "." else rel_dir
            if rel_dir and _opaque(current):
                hidden_here.add(rel_dir)
            kept = []
            for name in dirs + files:
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if rel in blocked:
                    continue
                host = os.path.join(current, name)
                info = os.lstat(host)
                if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                    hidden_here.add(rel)  # a whiteout
                    continue
                if not stat.S_ISDIR(info.st_mode):
                    hidden_here.add(rel)
                elif name in dirs:
                    kept.append(name)
                if rel not in emitted:
                    emitted.add(rel)
                    yield "/" + rel, host, info
            dirs[:] = kept
        blocked |= hidden_here


def _opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def scan_layers(layers: tuple[str, ...], config: ImageConfig, *, image: str = "", image_id: str = "") -> ScanReport:
    """The risk report of an image given its unpacked layer directories (lowest first) and config."""
    found = _Collector()
    wanted: dict[str, str] = {}  # image path → host path of the files read afterwards
    status_d: list[str] = []
    rpm = False
    entries = 0
    for path, host, info in merged_entries(layers):
        entries += 1
        _check_mode(found, path, info)
        rel = path[1:]
        if rel in (PASSWD, DPKG_STATUS, APK_INSTALLED):
            wanted[rel] = host
        elif rel.startswith(DPKG_STATUS_D + "/") and stat.S_ISREG(info.st_mode):
            status_d.append(host)
        elif rel in RPM_DATABASES:
            rpm = True
        if stat.S_ISREG(info.st_mode) and _secret_file_name(rel):
            _check_file(found, path, host, info)
    _check_env(found, config.env)
    passwd = _read(wanted.get(PASSWD))
    if user_is_root(config.user, passwd):
        found.add(FindingKind.RUNS_AS_ROOT, config.user or "root", "the image's default user is root (uid 0)")
    packages = parse_dpkg_status(_read(wanted.get(DPKG_STATUS)) or "")
    for host in sorted(status_d):
        packages += parse_dpkg_status(_read(host) or "")
    packages += parse_apk_installed(_read(wanted.get(APK_INSTALLED)) or "")
    databases = tuple(name for name, present in (("dpkg", DPKG_STATUS in wanted or bool(status_d)),
                                                  ("apk", APK_INSTALLED in wanted)) if present)
    return ScanReport(
        package_databases=databases,
        unread_databases=("rpm",) if rpm else (),
        image=image,
        image_id=image_id,
        user=config.user,
        findings=tuple(found.findings),
        counts=tuple(sorted(found.counts.items())),
        packages=tuple(sorted(set(packages), key=lambda p: (p.name, p.version))),
        entries=entries,
    )


def _check_mode(found: _Collector, path: str, info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISLNK(mode):
        return  # a symlink's own mode is always 0777 and means nothing
    owner = f"uid {info.st_uid}, gid {info.st_gid}, mode {stat.filemode(mode)}"
    if stat.S_ISREG(mode) and mode & stat.S_ISUID:
        found.add(FindingKind.SETUID, path, owner)
    if stat.S_ISREG(mode) and mode & stat.S_ISGID:
        found.add(FindingKind.SETGID, path, owner)
    # A sticky world-writable directory (/tmp) only lets each user remove their own files: the norm.
    if mode & stat.S_IWOTH and not (stat.S_ISDIR(mode) and mode & stat.S_ISVTX):
        found.add(FindingKind.WORLD_WRITABLE, path, owner)


def _secret_file_name(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    if relative.startswith(("usr/share/", "usr/lib/", "usr/include/", "etc/ssl/certs/")):
        return False  # documentation, libraries' test data, public certificates: not where secrets are left
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_FILE_NAMES)


def _check_file(found: _Collector, path: str, host: str, info: os.stat_result) -> None:
    """A file whose name says it may hold a secret, reported if its content has a secret's shape (never shown)."""
    if info.st_size == 0 or info.st_size > MAX_SECRET_FILE_BYTES:
        return
    text = _read(host)
    if text and _SECRET_CONTENT.search(text):
        what = "a private key" if "PRIVATE KEY-----" in text else "a credential or token"
        mode = stat.filemode(info.st_mode)
        found.add(FindingKind.SECRET_FILE, path, f"holds {what} ({info.st_size} bytes, mode {mode})")


def _check_env(found: _Collector, env: tuple[tuple[str, str], ...]) -> None:
    for key, value in env:
        if not value or _NOT_A_SECRET.match(value):
            continue
        if _SECRET_VALUE.search(value):
            found.add(FindingKind.SECRET_ENV, key, "the value has the shape of a known key or token format")
        elif _SECRET_KEY.search(key) and len(value) >= 6:
            found.add(FindingKind.SECRET_ENV, key, "the name suggests a secret and it has a literal value")


def _read(host_path: str | None) -> str | None:
    """A regular file's text, never through a symlink (the walk already stopped at symlinked parents)."""
    if host_path is None:
        return None
    try:
        fd = os.open(host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None
        return handle.read(MAX_DB_BYTES).decode("utf-8", "replace")


def read_image_file(layers: tuple[str, ...], relative: str) -> str | None:
    """A regular file of the merged image (topmost layer wins), found without walking the whole image.

    None when absent, hidden by a whiteout, an opaque directory or a non-directory parent in a
    higher layer, reached through a symlink, or not a regular file.
    """
    parts = [p for p in relative.strip("/").split("/") if p]
    for layer in reversed(layers):
        current, hides_lower = layer, False
        for index, part in enumerate(parts):
            path = os.path.join(current, part)
            try:
                info = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                break
            if stat.S_ISCHR(info.st_mode) and info.st_rdev == 0:
                return None  # whiteout
            if index < len(parts) - 1:
                if not stat.S_ISDIR(info.st_mode):
                    return None  # a file or symlink in place of a directory hides the lower layers
                hides_lower = hides_lower or _opaque(path)
            current = path
        else:
            return _read(current)
        if hides_lower:
            return None
    return None


def user_is_root(user: str, passwd: str | None) -> bool:
    """Whether USER ("", "0", "root", "name:group", "uid:gid") runs as uid 0, names looked up in passwd.

    A name the image's passwd lacks cannot start at all, so it does not count as root.
    """
    name = user.split(":", 1)[0]
    if name in ("", "0", "root"):
        return True
    if name.isdigit():
        return False
    for line in (passwd or "").splitlines():
        fields = line.split(":")
        if len(fields) >= 3 and fields[0] == name:
            return fields[2].strip() == "0"
    return False


def parse_dpkg_status(text: str) -> list[Package]:
    """Installed packages of a dpkg status file (deb822 paragraphs: Package, Status, Version)."""
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue  # continuation lines of long fields (Description)
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.strip()
        name = fields.get("package")
        status = fields.get("status", "install ok installed")  # status.d files have no Status field
        if name and status.endswith(" installed"):
            packages.append(Package(name, fields.get("version", ""), "dpkg"))
    return packages


def parse_apk_installed(text: str) -> list[Package]:
    """Packages of an apk database (lib/apk/db/installed: 'P:' name and 'V:' version per paragraph)."""
    packages = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields = dict(line.split(":", 1) for line in paragraph.splitlines() if len(line) > 2 and line[1] == ":")
        if fields.get("P"):
            packages.append(Package(fields["P"], fields.get("V", ""), "apk"))
    return packages
