"""``make dist``: build the one-folder app, strip it, add the desktop files, pack it and say what each part costs.

    python packaging/build.py [--no-pack]

Writes ``dist/hounsfield/`` and ``dist/hounsfield-<version>-<os>-<arch>.tar.gz`` (``.zip`` on Windows). Needs no
network: PyInstaller analyses the installed packages of the running interpreter (the CPU torch build of ``make venv``).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
APP = DIST / "hounsfield"

#: Shared libraries are stripped of symbol tables and debug info (``strip --strip-unneeded`` keeps the dynamic symbols
#: the loader needs): torch's wheels ship them unstripped (libtorch_cpu -89 MB, libtorch_python -9 MB), pyenv's
#: libpython carries debug info (-17 MB), the codec wheels too (-19 MB). Left alone: Qt (already stripped) and the
#: libraries auditwheel grafted into ``*.libs`` folders (patchelf moved their segments; strip breaks them: "ELF load
#: command address/offset not page-aligned"). Every stripped library is then loaded once to prove it still loads.
STRIP_SKIP = re.compile(r"(^PySide6/|^shiboken6/|\.libs/)")
#: Loaded with dlopen, never named as NEEDED: kept even when no library lists them.
DLOPENED = ("libpython", "libgcc_s", "libstdc++")

#: Linux desktop integration copied beside the executable (install.sh installs them into ~/.local).
LINUX_EXTRAS = {
    "packaging/linux/install.sh": "install.sh",
    "packaging/hounsfield.desktop": "share/hounsfield.desktop",
    "packaging/linux/hounsfield-mime.xml": "share/hounsfield-mime.xml",
    "resources/icons/hounsfield.png": "share/hounsfield.png",
    "resources/icons/hounsfield.svg": "share/hounsfield.svg",
    "docs/install.md": "INSTALL.md",
}

#: The parts reported in the size table: (label, globs under _internal/).
PARTS = (
    ("torch libraries (libtorch_cpu, ...)", ("torch/lib",)),
    ("torch Python code", ("torch", "!torch/lib", "functorch", "torchgen")),
    ("SimpleITK", ("SimpleITK",)),
    ("Qt libraries + plugins", ("PySide6/Qt",)),
    ("PySide6/shiboken bindings", ("PySide6", "!PySide6/Qt", "shiboken6")),
    ("numpy + OpenBLAS", ("numpy", "numpy.libs")),
    ("DICOM codecs (libjpeg, openjpeg, CharLS, rle)", ("_libjpeg*", "_openjpeg*", "_CharLS*", "libjpeg", "openjpeg",
                                                       "rle", "jpeg_ls")),
    ("Pillow", ("PIL", "pillow.libs")),
    ("MONAI", ("monai",)),
    ("pydicom + highdicom", ("pydicom", "highdicom")),
    ("pyqtgraph", ("pyqtgraph",)),
    ("built-in models + resources", ("resources",)),
    ("Python runtime (libpython, stdlib)", ("libpython*", "base_library.zip", "python3*", "lib-dynload")),
    ("system libraries (X11, xcb, fontconfig, glib, ...)", ("lib*.so*", "!libpython*")),
)


def version() -> str:
    sys.path.insert(0, str(ROOT))
    from viewer import __version__

    return __version__


def archive_name() -> str:
    system = {"linux": "linux", "darwin": "macos", "win32": "windows"}.get(sys.platform, sys.platform)
    return f"hounsfield-{version()}-{system}-{platform.machine().lower()}"


def tree_size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _is_elf(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == b"\x7fELF"


def strip_libraries(internal: Path, backup: Path) -> int:
    """Strip the shared libraries :data:`STRIP_SKIP` allows, keep the ones that still load (the others are put back
    as they were); returns the bytes saved (0 where strip is absent)."""
    strip = shutil.which("strip")
    if strip is None or sys.platform != "linux":
        return 0
    shutil.rmtree(backup, ignore_errors=True)
    stripped: dict[Path, tuple[Path, int]] = {}
    for lib in sorted(internal.rglob("*.so*")):
        relative = lib.relative_to(internal).as_posix()
        if lib.is_symlink() or not lib.is_file() or STRIP_SKIP.search(relative) or not _is_elf(lib):
            continue
        kept = backup / relative
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib, kept)
        before = lib.stat().st_size
        subprocess.run([strip, "--strip-unneeded", str(lib)], check=True)
        stripped[lib] = (kept, before)
    probe = ("import ctypes, sys\n"
             "for path in sys.stdin.read().splitlines():\n"
             "    try:\n        ctypes.CDLL(path)\n"
             "    except OSError as error:\n        print(path, flush=True) if 'page-aligned' in str(error) or "
             "'ELF' in str(error) else None\n")
    result = subprocess.run([sys.executable, "-c", probe], input="\n".join(map(str, stripped)), text=True,
                            capture_output=True, env={**os.environ, "LD_LIBRARY_PATH": str(internal)})
    broken = {Path(line) for line in result.stdout.splitlines()} if result.returncode == 0 else set(stripped)
    for lib in broken:
        shutil.copy2(stripped[lib][0], lib)
        print(f"strip: kept {lib.relative_to(internal)} unstripped (it did not load stripped)")
    shutil.rmtree(backup, ignore_errors=True)
    return sum(before - lib.stat().st_size for lib, (_, before) in stripped.items())


def minify_json(internal: Path) -> int:
    """Rewrite :data:`bundle_rules.MINIFY_JSON` files compactly (same content); returns the bytes saved."""
    import json

    sys.path.insert(0, str(ROOT / "packaging"))
    from bundle_rules import MINIFY_JSON

    saved = 0
    for pattern in MINIFY_JSON:
        for path in internal.glob(pattern):
            before = path.stat().st_size
            data = json.loads(path.read_text(encoding="utf-8"))
            path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False), encoding="utf-8")
            saved += before - path.stat().st_size
    return saved


def _needed(path: Path) -> list[str]:
    out = subprocess.run(["readelf", "-d", str(path)], capture_output=True, text=True).stdout
    return re.findall(r"\(NEEDED\).*\[(.*)\]", out)


def prune_orphans(internal: Path) -> list[str]:
    """Remove the system libraries at the top of ``_internal`` that nothing in the app needs any more (they came
    with a plugin bundle_rules left out, e.g. GTK with the gtk3 theme) and links left dangling; returns their names.
    Linux only (readelf)."""
    if sys.platform != "linux" or shutil.which("readelf") is None:
        return []
    removed = [p for p in internal.iterdir() if p.is_symlink() and not p.exists()]
    top = {p.name: p for p in internal.glob("lib*.so*") if p.exists()}
    roots = [p for p in internal.rglob("*.so*") if p.parent != internal and p.is_file() and not p.is_symlink()]
    roots += [internal.parent / "hounsfield"] + [p for n, p in top.items() if n.startswith(DLOPENED)]
    reached: set[str] = set()
    stack = list(roots)
    while stack:
        for name in _needed(stack.pop()):
            if name in top and name not in reached:
                reached.add(name)
                stack.append(top[name])
    removed += [p for n, p in top.items() if n not in reached and not n.startswith(DLOPENED)]
    for path in removed:
        path.unlink()
    return sorted(p.name for p in removed)


def add_extras(app: Path) -> None:
    if sys.platform != "linux":
        return
    for source, target in LINUX_EXTRAS.items():
        destination = app / target
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / source, destination)
    (app / "install.sh").chmod(0o755)


def part_sizes(internal: Path) -> list[tuple[str, int]]:
    """Bytes per part of :data:`PARTS` (each file counted once, in the first part that claims it), plus the rest."""
    files = {p: p.lstat().st_size for p in internal.rglob("*") if p.is_file() and not p.is_symlink()}
    claimed: set[Path] = set()
    rows = []
    for label, globs in PARTS:
        keep = [g for g in globs if not g.startswith("!")]
        drop = [g[1:] for g in globs if g.startswith("!")]
        chosen: set[Path] = set()
        for pattern in keep:
            for top in internal.glob(pattern):
                chosen |= {top} if top.is_file() else {p for p in files if top in p.parents}
        for pattern in drop:
            for top in internal.glob(pattern):
                chosen -= {top} if top.is_file() else {p for p in chosen if top in p.parents}
        chosen = {p for p in chosen if p in files} - claimed
        claimed |= chosen
        rows.append((label, sum(files[p] for p in chosen)))
    rows.append(("everything else in _internal", sum(size for p, size in files.items() if p not in claimed)))
    executable = next((p for p in (internal.parent / "hounsfield", internal.parent / "hounsfield.exe") if p.exists()),
                      None)
    if executable is not None:
        rows.append(("executable + PYZ (all Python code, compiled)", executable.stat().st_size))
    return rows


def pack(app: Path) -> Path:
    base = DIST / archive_name()
    if sys.platform == "win32":
        return Path(shutil.make_archive(str(base), "zip", DIST, app.name))
    target = Path(f"{base}.tar.gz")
    # gzip level 6: level 9 takes twice as long for ~1 % less
    with tarfile.open(target, "w:gz", compresslevel=6) as tar:
        tar.add(app, arcname=f"hounsfield-{version()}")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-pack", action="store_true", help="skip the archive")
    args = parser.parse_args()
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    "--distpath", str(DIST), "--workpath", str(ROOT / "build"),
                    str(ROOT / "packaging" / "hounsfield.spec")], check=True, cwd=ROOT)
    frozen = time.perf_counter() - started
    internal = APP / "_internal"
    orphans = prune_orphans(internal)
    saved = strip_libraries(internal, ROOT / "build" / "unstripped") + minify_json(internal)
    add_extras(APP)
    built = time.perf_counter() - started
    print(f"\nbuilt {APP.relative_to(ROOT)} in {built:.0f} s (PyInstaller {frozen:.0f} s); stripping + JSON saved "
          f"{saved / 1e6:.0f} MB; {len(orphans)} libraries nothing needs removed: {' '.join(orphans)}")
    print(f"{'part':<52} {'MB':>8}")
    for label, size in part_sizes(internal):
        print(f"{label:<52} {size / 1e6:8.1f}")
    print(f"{'unpacked total':<52} {tree_size(APP) / 1e6:8.1f}")
    if not args.no_pack:
        packed = time.perf_counter()
        archive = pack(APP)
        print(f"{'packed: ' + archive.name:<52} {archive.stat().st_size / 1e6:8.1f}   "
              f"({time.perf_counter() - packed:.0f} s to pack)")
    print(f"total build time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    os.chdir(ROOT)
    raise SystemExit(main())
