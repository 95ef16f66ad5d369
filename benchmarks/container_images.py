"""The images of ``make images``: their sizes, a warm rebuild, and what a source-only edit rebuilds.

Without arguments it only reads the images that are there (cheap): each image's size and layer count, and the
size of its last layer. With ``--warm`` it also times a warm ``docker/build-images.sh`` (everything cached);
with ``--source-edit`` it builds the api image from a copy of the build context in which one source file has one
more comment line: it reports how long that took and which layers of the result differ from
``mixup-studies/api:latest`` (the goal: only the last one, the project's ``/opt/project``). The edited image's tag
is removed afterwards.

Pass the same ``TORCH_INDEX_URL`` (environment) as the cold build, or the torch layer is not a cache hit.
Prints one JSON line; ``{"skipped": reason}`` where no container engine runs or the images are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.docker._containers import IMAGES, Engine, find_engine, missing_images  # noqa: E402

CONTEXT_FILES = ("pyproject.toml", "README.md", ".dockerignore", "mixup_core", "studies", "service")
EDITED = "service/__init__.py"


def layers(engine: Engine, image: str) -> list[str]:
    out = engine("image", "inspect", "--format", "{{json .RootFS.Layers}}", image, timeout=120)
    assert out.returncode == 0, out.stderr
    return list(json.loads(out.stdout))


def size_mb(engine: Engine, image: str) -> float:
    out = engine("image", "inspect", "--format", "{{.Size}}", image, timeout=120)
    return round(int(out.stdout.strip()) / 1e6, 1)


UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}


def human_bytes(text: str) -> float:
    """'1.63 MB' / '1.63MB' / '0 B' (how docker and podman print a layer's size) in bytes."""
    number, unit = re.fullmatch(r"([\d.]+)\s*([kKMGT]?B)", text.strip()).groups()  # type: ignore[union-attr]
    return float(number) * UNITS[unit]


def last_layer_mb(engine: Engine, image: str) -> float:
    """Size of the newest layer that holds files (history lists newest first; metadata steps are 0 B)."""
    out = engine("history", "--format", "{{.Size}}", image, timeout=300)
    sizes = [human_bytes(line) for line in out.stdout.splitlines() if line.strip()]
    return round(next((s for s in sizes if s > 0), 0.0) / 1e6, 2)


def build(env: dict[str, str]) -> list[dict[str, Any]]:
    """Run build-images.sh; its JSON lines."""
    out = subprocess.run(
        ["nice", "-n", "15", str(REPO / "docker" / "build-images.sh")],
        capture_output=True,
        text=True,
        env=os.environ | env,
        timeout=7200,
        check=False,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{"image"')]


def source_edit(engine: Engine) -> dict[str, Any]:
    """Build the api image from a context with one edited source file; which layers changed."""
    with tempfile.TemporaryDirectory(prefix="mx-edit-") as tmp:
        for name in CONTEXT_FILES:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, Path(tmp) / name)
        with open(Path(tmp) / EDITED, "a") as f:
            f.write("# an edit for benchmarks/container_images.py\n")
        lines = build({"IMAGES": "api", "IMAGE_TAG": "bench-edit", "PROJECT_CONTEXT": tmp})
    edited, base = "mixup-studies/api:bench-edit", IMAGES["api"].format(tag="latest")
    try:
        old, new = layers(engine, base), layers(engine, edited)
        changed = [i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b]
        return {
            "seconds": lines[0]["seconds"],
            "layers": len(new),
            "changed_layers": changed,
            "only_the_last_layer": len(old) == len(new) and changed == [len(new) - 1],
            "last_layer_mb": last_layer_mb(engine, edited),
        }
    finally:
        engine("rmi", edited, timeout=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--warm", action="store_true", help="also time a warm make images (everything cached)")
    parser.add_argument("--source-edit", action="store_true", help="also build the api image after a source edit")
    args = parser.parse_args()
    engine, reason = find_engine()
    if engine is None:
        print(json.dumps({"benchmark": "container_images", "skipped": reason}))
        return
    missing = missing_images(engine)
    if missing:
        print(json.dumps({"benchmark": "container_images", "skipped": f"images missing (make images): {missing}"}))
        return
    result: dict[str, Any] = {"benchmark": "container_images", "engine": engine.name, "images": {}}
    for key, pattern in IMAGES.items():
        image = pattern.format(tag="latest")
        result["images"][key] = {
            "image": image,
            "size_mb": size_mb(engine, image),
            "layers": len(layers(engine, image)),
            "last_layer_mb": last_layer_mb(engine, image),
        }
    if args.warm:
        result["warm_build_s"] = {line["image"]: line["seconds"] for line in build({})}
    if args.source_edit:
        result["source_edit"] = source_edit(engine)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
