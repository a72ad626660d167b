"""Write a one-layer OCI image archive, for `ctr images import`, without a container engine.

    python3 hack/cluster/oci-image.py NAME OUT.tar FILE:PATH[:MODE] ... -- ENTRYPOINT...

Each FILE is put at PATH in the image (MODE in octal, default 0755). The cluster's pause
image is made this way from the binary built from hack/cluster/pause.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
import tarfile


def _blob(out: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}"


def _layer(files: list[tuple[str, str, int]]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as layer:
        for source, path, mode in files:
            with open(source, "rb") as f:
                data = f.read()
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), mode
            layer.addfile(info, io.BytesIO(data))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def main(argv: list[str]) -> None:
    if "--" not in argv or len(argv) < 4:
        sys.exit(__doc__)
    split = argv.index("--")
    name, out_path, specs, entrypoint = argv[0], argv[1], argv[2:split], argv[split + 1 :]
    files = []
    for spec in specs:
        parts = spec.split(":")
        files.append((parts[0], parts[1], int(parts[2], 8) if len(parts) > 2 else 0o755))
    layer, diff_id = _layer(files)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": entrypoint, "User": "65535:65535"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    }
    with tarfile.open(out_path, "w") as out:
        layer_digest = _blob(out, layer)
        config_bytes = json.dumps(config, sort_keys=True).encode()
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _blob(out, config_bytes),
                "size": len(config_bytes),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": layer_digest,
                    "size": len(layer),
                }
            ],
        }
        manifest_bytes = json.dumps(manifest, sort_keys=True).encode()
        index = {
            "schemaVersion": 2,
            "manifests": [
                {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": _blob(out, manifest_bytes),
                    "size": len(manifest_bytes),
                    "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
                }
            ],
        }
        for member, data in (("oci-layout", {"imageLayoutVersion": "1.0.0"}), ("index.json", index)):
            raw = json.dumps(data).encode()
            info = tarfile.TarInfo(member)
            info.size = len(raw)
            out.addfile(info, io.BytesIO(raw))


if __name__ == "__main__":
    main(sys.argv[1:])
