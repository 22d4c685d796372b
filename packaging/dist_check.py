"""``make dist-check``: the release check of the frozen app. Runs ``dist/hounsfield/hounsfield`` - never the venv -
the way a user would, and prints one line per step and a table of start-up times (frozen beside the venv).

Steps: ``--version``; the Qt platform plugins' and every bundled library's dependencies (ldd: which system
libraries the machine must provide); ``models``; ``scan`` of every ../shared/data folder; ``info`` on files of every
transfer syntax there (J2K, JPEG-LS, RLE, JPEG baseline/extended/lossless, deflate, big endian, ...), each compared
with the venv's own reading of the same file; ``sample``; ``infer`` with both built-in models on the sample
(findings found, SEG written); ``screenshot``; ``anonymize`` (a SEG with its images: written, references kept);
``pacs`` echo / query / retrieve by DICOMweb and by C-GET from a real Orthanc (when Debian's ``orthanc`` and
``orthanc-dicomweb`` are installed; otherwise the step says so), the retrieved series read back by ``info``; the GUI
with ``--smoke-test`` (sample + both models, offscreen); then
time to first window / first image, cold (the app's and the data's files evicted from the page cache with
posix_fadvise, no root needed) and warm, for the frozen app and for ``python -m viewer``.

    .venv/bin/python packaging/dist_check.py [--app dist/hounsfield/hounsfield] [--data ../shared/data] [--quick]

Exit code 0 when every step passed. The checker itself runs in the venv (to read headers and compare); the app
under test gets a clean environment: no PYTHONPATH, a temporary HOUNSFIELD_HOME, a temporary working folder.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMOKE_MARKER = "SMOKE-TEST "
MODELS = ("hounsfield-chest-ct-nodule-detection", "hounsfield-chest-ct-segmentation")
#: System libraries a desktop provides and the app does not ship (docs/install.md lists the Debian/Ubuntu packages).
SYSTEM_LIBS = re.compile(r"^lib(GL|EGL|GLX|OpenGL|GLdispatch|xkbcommon|xkbcommon-x11|xcb.*|X11.*|fontconfig|freetype|"
                         r"dbus-1|wayland-.*|glib-2\.0|gthread-2\.0|gobject-2\.0|Xrender|Xext|Xi|ICE|SM|drm|gbm)\.so")


class Check:
    def __init__(self) -> None:
        self.results: list[tuple[str, bool, str]] = []

    def record(self, step: str, ok: bool, detail: str = "") -> bool:
        self.results.append((step, ok, detail))
        print(f"[{'PASS' if ok else 'FAIL'}] {step}" + (f": {detail}" if detail else ""), flush=True)
        return ok

    @property
    def failed(self) -> list[str]:
        return [step for step, ok, _ in self.results if not ok]


def clean_env(home: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "HOUNSFIELD"))}
    env.update(HOUNSFIELD_HOME=str(home), QT_QPA_PLATFORM="offscreen")
    return env


def run(cmd: list, env: dict, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def tail(text: str, n: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-n:])


# ---- files and transfer syntaxes ------------------------------------------------------------------------------------

def files_by_transfer_syntax(data: Path) -> dict[str, list[Path]]:
    """Every file with pixel data under ``data/ts-*``, by transfer syntax name (read in the venv with pydicom)."""
    import pydicom

    found: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(data.glob("ts-*/**/*")):
        if not path.is_file() or path.suffix in (".txt", ".md", ".rst", ".py", ".sh"):
            continue
        try:
            ds = pydicom.dcmread(path, defer_size=64)
        except Exception:  # noqa: BLE001 - not DICOM
            continue
        if "PixelData" not in ds or "TransferSyntaxUID" not in ds.file_meta:
            continue
        found[ds.file_meta.TransferSyntaxUID.name].append(path)
    return found


def venv_info(path: Path) -> dict | None:
    """What the venv reads from one file: the ``info --json`` record, or None when it cannot load it."""
    from viewer.cli import volume_info
    from viewer.core.dicom.catalog import default_image_series
    from viewer.core.dicom.load import load_series
    from viewer.core.dicom.scan import scan

    try:
        series = default_image_series(scan([path]))
        return volume_info(load_series(series)) if series is not None else None
    except Exception:  # noqa: BLE001
        return None


def check_transfer_syntaxes(check: Check, app: Path, data: Path, env: dict, cwd: Path, per_syntax: int) -> None:
    by_ts = files_by_transfer_syntax(data)
    for ts, paths in sorted(by_ts.items()):
        # the smallest files first, from different folders where there are several
        ordered = sorted(paths, key=lambda p: (p.stat().st_size))
        picked: list[Path] = []
        for p in ordered:
            if len(picked) < per_syntax and all(q.parent != p.parent for q in picked):
                picked.append(p)
        decoded, notes = 0, []
        for path in picked:
            expected = venv_info(path)
            result = run([app, "info", path, "--json"], env, cwd, timeout=120)
            got = json.loads(result.stdout) if result.returncode == 0 and result.stdout.strip() else None
            name = path.relative_to(data)
            if expected is None and got is None:
                notes.append(f"{name}: unreadable in both (as expected)")
            elif expected is None or got is None or got["shape"] != expected["shape"] or \
                    got["dtype"] != expected["dtype"]:
                check.record(f"info {ts}", False, f"{name}: frozen {got and got['shape']} rc={result.returncode} "
                             f"{tail(result.stderr, 2)}; venv {expected and expected['shape']}")
                return
            else:
                decoded += 1
                notes.append(f"{name} {got['shape']} {got['dtype']}")
        check.record(f"info {ts}", decoded > 0, "; ".join(notes))


# ---- the page cache --------------------------------------------------------------------------------------------------

def evict(paths) -> int:
    """Drop the page-cache pages of every file under ``paths`` (posix_fadvise DONTNEED: no root needed); returns
    how many files."""
    count = 0
    for top in paths:
        top = Path(top)
        for path in [top] if top.is_file() else top.rglob("*"):
            if not path.is_file() or path.is_symlink():
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                count += 1
            finally:
                os.close(fd)
    return count


def venv_files() -> list[Path]:
    import sysconfig

    files = [Path(sysconfig.get_paths()["purelib"]), Path(sysconfig.get_paths()["stdlib"]), ROOT / "viewer",
             ROOT / "inference", ROOT / "resources"]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        files += list(Path(libdir).glob("libpython3*"))
    return files


def smoke(cmd: list, env: dict, cwd: Path, timeout: float) -> tuple[dict | None, float, str]:
    started = time.time()
    result = run(cmd, env, cwd, timeout=timeout)
    wall = time.time() - started
    lines = [line for line in result.stdout.splitlines() if line.startswith(SMOKE_MARKER)]
    report = json.loads(lines[-1][len(SMOKE_MARKER):]) if lines else None
    if report is not None:
        report["rc"] = result.returncode
    return report, wall, tail(result.stderr)


def main() -> int:
    parser = argparse.ArgumentParser(description="release check of the frozen app")
    parser.add_argument("--app", type=Path, default=ROOT / "dist" / "hounsfield" / "hounsfield")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--per-syntax", type=int, default=2, help="files decoded per transfer syntax")
    parser.add_argument("--warm-runs", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="skip the timings")
    args = parser.parse_args()
    app = args.app.resolve()
    if not os.access(app, os.X_OK):
        print(f"dist-check: no frozen app at {app} (make dist)", file=sys.stderr)
        return 2
    data = args.data.resolve()
    check = Check()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="hounsfield-dist-check-") as tmp:
        tmp = Path(tmp)
        home, cwd, out = tmp / "home", tmp / "cwd", tmp / "out"
        for folder in (home, cwd, out):
            folder.mkdir()
        env = clean_env(home)

        from viewer import __version__

        result = run([app, "--version"], env, cwd)
        check.record("--version", result.returncode == 0 and result.stdout.strip() == f"hounsfield {__version__}",
                     result.stdout.strip() or tail(result.stderr))

        internal = app.parent / "_internal"
        missing: dict[str, set[str]] = defaultdict(set)
        system: set[str] = set()
        for lib in sorted(internal.rglob("*.so*")):
            if lib.is_symlink() or not lib.is_file():
                continue
            ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True,
                                 env={"LD_LIBRARY_PATH": str(internal)})
            for line in ldd.stdout.splitlines():
                name = line.strip().split(" ")[0]
                if "not found" in line:
                    missing[name].add(lib.relative_to(internal).as_posix())
                elif "=>" in line and not line.split("=>")[1].strip().startswith(str(internal)) and \
                        "PySide6/Qt/plugins/platforms" in lib.as_posix():
                    system.add(name)
        unexpected = {name: users for name, users in missing.items() if not SYSTEM_LIBS.match(name)}
        xcb = internal / "PySide6" / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        check.record("ldd: every bundled library's dependencies resolve (bundle + documented system libraries)",
                     not unexpected and xcb.exists(),
                     ("missing: " + "; ".join(f"{n} (for {', '.join(sorted(u)[:3])})" for n, u in unexpected.items()))
                     if unexpected else f"system libraries the platform plugins use: {' '.join(sorted(system))}"
                     + (f"; not installed here (documented): {' '.join(sorted(missing))}" if missing else ""))

        result = run([app, "models", "--json"], env, cwd)
        ids = [m["id"] for m in json.loads(result.stdout)] if result.returncode == 0 else []
        check.record("models", all(m in ids for m in MODELS), ", ".join(ids) or tail(result.stderr))

        for folder in sorted(p for p in data.iterdir() if p.is_dir()):
            result = run([app, "scan", folder, "--json"], env, cwd, timeout=300)
            try:
                doc = json.loads(result.stdout)
                n = sum(len(st["series"]) for p in doc["patients"] for st in p["studies"])
                detail = f"{n} series, {len(doc['unreadable'])} unreadable"
            except (ValueError, KeyError):
                n, detail = 0, tail(result.stderr)
            check.record(f"scan {folder.name}", result.returncode == 0 and n > 0, detail)

        check_transfer_syntaxes(check, app, data, env, cwd, args.per_syntax)

        result = run([app, "sample", "--out", out / "sample"], env, cwd, timeout=300)
        sample = Path(result.stdout.strip().splitlines()[-1]) if result.returncode == 0 and result.stdout.strip() \
            else None
        check.record("sample", sample is not None and sample.exists(), str(sample) if sample else tail(result.stderr))

        for model in MODELS:
            target = out / model
            t = time.time()
            explain = ["--explain"] if "detection" in model else []  # the finding maps too (MONAI occlusion)
            result = run([app, "infer", sample or out, "--model", model, "--out", target, *explain], env, cwd,
                         timeout=900)
            findings = target / "findings.json"
            dicoms = sorted(p.name for p in target.glob("*.dcm"))
            detail = f"{time.time() - t:.0f} s; " + (tail(result.stdout, 3) if result.returncode == 0
                                                      else tail(result.stderr))
            if "detection" in model:
                n = len(json.loads(findings.read_text()).get("findings", [])) if findings.exists() else 0
                maps = list(target.glob("finding_maps/*.nii*"))
                ok = result.returncode == 0 and n > 0 and bool(maps) and "findings.sr.dcm" in dicoms
                detail = f"{n} findings, {len(maps)} finding maps, {' '.join(dicoms)}; {detail}"
            else:
                ok = result.returncode == 0 and "seg.dcm" in dicoms
                detail = f"{' '.join(dicoms)}; {detail}"
            check.record(f"infer {model}", ok, detail)

        png = out / "shot.png"
        result = run([app, "screenshot", data / "lidc-idri-0001", "--out", png, "--window", "lung", "--layout", "1x3"],
                     env, cwd, timeout=300)
        check.record("screenshot", result.returncode == 0 and png.exists() and png.stat().st_size > 20_000,
                     f"{png.stat().st_size} bytes" if png.exists() else tail(result.stderr))

        check_anonymize(check, app, data, env, cwd, out)
        check_pacs(check, app, data, env, cwd, out)

        report, wall, err = smoke([app, "--smoke-test"], env, cwd, timeout=900)
        check.record("GUI --smoke-test (sample + both models, offscreen)", bool(report and report.get("ok")
                                                                                 and report["rc"] == 0),
                     f"{json.dumps(report)}; {wall:.0f} s" if report else err)

        if not args.quick:
            timings(check, app, data, env, cwd, args.warm_runs)

    print(f"\ndist-check: {len(check.results) - len(check.failed)}/{len(check.results)} steps passed in "
          f"{time.time() - started:.0f} s" + (f"; FAILED: {', '.join(check.failed)}" if check.failed else ""))
    return 1 if check.failed else 0


def check_anonymize(check: Check, app: Path, data: Path, env: dict, cwd: Path, out: Path) -> None:
    """De-identify the seg-rtstruct folder (SEG, RTSTRUCT, SR and their images) and scan the result."""
    target = out / "anonymized"
    result = run([app, "anonymize", data / "seg-rtstruct", "--out", target, "--json",
                  "--uid-map", out / "uid-map.json"], env, cwd, timeout=300)
    scan = run([app, "scan", target, "--json"], env, cwd, timeout=300)
    try:
        written = json.loads(result.stdout).get("written", [])
        n_written = len(written) if isinstance(written, list) else int(written)
        series = [s for p in json.loads(scan.stdout)["patients"] for st in p["studies"] for s in st["series"]]
        segs = [s for s in series if s["kind"] == "seg"]
        detail = f"{n_written} files written, {len(series)} series, {len(segs)} SEG referencing " \
                 f"{sum(len(s['references']) for s in segs)} series"
        ok = result.returncode == 0 and n_written > 0 and bool(segs) and all(s["references"] for s in segs)
    except (ValueError, KeyError, TypeError):
        ok, detail = False, tail(result.stderr) or tail(scan.stderr)
    check.record("anonymize", ok, detail)


def check_pacs(check: Check, app: Path, data: Path, env: dict, cwd: Path, out: Path) -> None:
    """``pacs`` against a real Orthanc on loopback ports holding LIDC-IDRI-0001: DICOMweb and DIMSE (C-GET)."""
    sys.path.insert(0, str(ROOT))
    from tests.services.orthanc import OrthancServer, missing_reason

    if reason := missing_reason():
        print(f"[SKIP] pacs: {reason}", flush=True)
        return
    with OrthancServer(out / "orthanc") as server:
        server.upload_folder(data / "lidc-idri-0001")
        routes = {"DICOMweb": ["--url", server.dicomweb_url],
                  "DIMSE C-GET": ["--aet", "ORTHANC", "--host", "127.0.0.1", "--port", str(server.dicom_port)]}
        for route, node in routes.items():
            echo = run([app, "pacs", "echo", *node], env, cwd, timeout=60)
            query = run([app, "pacs", "query", *node, "--modality", "CT", "--json"], env, cwd, timeout=60)
            try:
                study = json.loads(query.stdout)[0]["study_uid"]
            except (ValueError, KeyError, IndexError, TypeError):
                check.record(f"pacs {route}", False, tail(echo.stderr) or tail(query.stderr))
                continue
            cache = out / f"cache-{route.split()[0]}"
            t = time.time()
            retrieve = run([app, "pacs", "retrieve", study, *node, "--cache", cache], env, cwd, timeout=300)
            seconds = time.time() - t
            folders = [Path(line) for line in retrieve.stdout.splitlines() if line.strip().startswith(str(cache))]
            info = run([app, "info", folders[0], "--json"], env, cwd) if folders else None
            shape = json.loads(info.stdout)["shape"] if info is not None and info.returncode == 0 else None
            check.record(f"pacs {route}: echo, query, retrieve, info",
                         echo.returncode == 0 and retrieve.returncode == 0 and shape == [133, 512, 512],
                         f"{echo.stdout.strip()}; retrieved {shape} in {seconds:.1f} s" if shape
                         else tail(retrieve.stderr) or tail(echo.stderr))


def timings(check: Check, app: Path, data: Path, env: dict, cwd: Path, warm_runs: int) -> None:
    """Time to first window / first image of LIDC-IDRI-0001 (133 slices), frozen beside the venv, cold and warm."""
    study = data / "lidc-idri-0001"
    venv_env = dict(env, PYTHONPATH=str(ROOT))
    variants = {
        "frozen": ([app, "--smoke-test", study], env, [app.parent]),
        "venv": ([sys.executable, "-m", "viewer", "--smoke-test", study], venv_env, venv_files()),
    }
    rows = []
    for name, (cmd, run_env, files) in variants.items():
        for kind in ["cold"] + ["warm"] * warm_runs:
            if kind == "cold":
                evict(list(files) + [study])
            report, wall, err = smoke(cmd, run_env, cwd, timeout=300)
            ok = bool(report and report.get("ok"))
            if not ok:
                check.record(f"timing {name} {kind}", False, err)
                continue
            rows.append((name, kind, report["first_window_s"], report["first_image_s"], wall))
    print("\nstart-up: LIDC-IDRI-0001 (133 x 512 x 512), offscreen; seconds after the process started")
    print(f"{'build':<8} {'run':<5} {'first window':>13} {'first image':>12} {'exit (wall)':>12}")
    for name, kind, window, image, wall in rows:
        print(f"{name:<8} {kind:<5} {window:13.2f} {image:12.2f} {wall:12.2f}")
    check.record("timings", len(rows) == 2 * (1 + warm_runs), f"{len(rows)} runs")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
