"""The built-in `busybox` image, built locally from the host's busybox-static, so isobox runs offline.

The image is a real single-layer OCI image (manifest, config, gzip layer) committed to the store
like any pulled image, under docker.io/library/busybox:latest. The layer is reproducible: fixed
mtimes and ownership, sorted entries, gzip without a timestamp, so its digest depends only on the
busybox binary.
"""

from __future__ import annotations

import gzip
import io
import json
import subprocess
import tarfile
from pathlib import Path

from isobox.errors import HostError
from isobox.images.content import sha256_digest
from isobox.images.store import OCI_CONFIG, OCI_MANIFEST, ImageRecord, ImageStore

BUILTIN_NAME = "docker.io/library/busybox:latest"
BUSYBOX_CANDIDATES = (Path("/bin/busybox"), Path("/usr/bin/busybox"))
EPOCH = 0

_DIRS = {
    "bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700, "run": 0o755,
    "sbin": 0o755, "sys": 0o555, "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "var": 0o755, "var/tmp": 0o1777, "var/log": 0o755,
}
_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    "etc/group": "root:x:0:\nnogroup:x:65534:\n",
    "etc/hosts": "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
    "etc/os-release": 'NAME="isobox busybox"\nID=busybox\n',
}


def find_busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        if candidate.is_file():
            return candidate
    raise HostError("busybox-static is not installed (run scripts/setup)", op="build builtin image")


def _applets(busybox: Path) -> list[str]:
    try:
        out = subprocess.run([str(busybox), "--list-full"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise HostError(f"cannot list busybox applets: {exc}", op="build builtin image", path=str(busybox)) from exc
    return sorted({line.strip() for line in out.splitlines() if line.strip() and "/" in line})


def build_layer(busybox: Path) -> bytes:
    """The uncompressed tar of the image's root filesystem."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(info: tarfile.TarInfo, data: bytes | None = None) -> None:
            info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)

        for name, mode in sorted(_DIRS.items()):
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, mode
            add(info)
        binary = busybox.read_bytes()
        info = tarfile.TarInfo("bin/busybox")
        info.size, info.mode = len(binary), 0o755
        add(info, binary)
        for name, text in sorted(_FILES.items()):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            add(info, data)
        for applet in _applets(busybox):
            path = applet.lstrip("/")
            if path == "bin/busybox" or path.count("/") > 2:
                continue
            info = tarfile.TarInfo(path)
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "/bin/busybox", 0o777
            add(info)
    return buffer.getvalue()


def install(store: ImageStore, busybox: Path | None = None) -> ImageRecord:
    """Build the image and commit it to ``store`` as busybox:latest (idempotent)."""
    binary = busybox or find_busybox()
    tar_bytes = build_layer(binary)
    diff_id = sha256_digest(tar_bytes)
    compressed = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    layer_digest = store.blobs.put_bytes(compressed)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "1970-01-01T00:00:00Z",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "Labels": {"org.isobox.builtin": "true"},
        },
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": "1970-01-01T00:00:00Z", "created_by": f"isobox builtin from {binary}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True, separators=(",", ":")).encode()
    config_digest = store.blobs.put_bytes(config_bytes)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": len(compressed),
            }
        ],
    }
    manifest_bytes = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
    return store.commit(manifest_bytes, [BUILTIN_NAME])
