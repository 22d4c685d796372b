"""What the frozen app leaves out, and why (used by hounsfield.spec and build.py; plain Python, no PyInstaller)."""
from __future__ import annotations

import fnmatch

#: (pattern on the path inside the bundle, why it can go). Patterns use "/" and match case-sensitively.
EXCLUDED_FILES: tuple[tuple[str, str], ...] = (
    ("torch/test/*", "torch's C++ test binaries (83 MB)"),
    ("torch/bin/[!t]*", "protoc and C++ test executables (50 MB); torch_shm_manager stays (tensors shared "
     "between processes need it)"),
    ("torch/bin/t[!o]*", "C++ test executables"),
    ("torch/bin/test*", "C++ test executables"),
    ("pillow.libs/libavif*", "Pillow's AVIF plugin is left out (see the spec)"),
    ("torch/include/*", "C++ headers, for building extensions"),
    ("torch/share/*", "CMake files, for building extensions"),
    ("torch/lib/libtorchbind_test.so", "test library"),
    ("torch/lib/libjitbackend_test.so", "test library"),
    ("torch/lib/libbackend_with_compiler.so", "test library"),
    ("torch/lib/libaoti_custom_ops.so", "test library"),
    ("*.pyi", "type stubs"),
    ("*/py.typed", "type-checker marker"),
    ("PySide6/Qt/translations/*", "Qt's own UI translations; the app's UI is English"),
    ("PySide6/Qt/plugins/platforms/libqeglfs.so", "EGL full-screen: embedded devices, not desktops"),
    ("PySide6/Qt/plugins/platforms/libqlinuxfb.so", "Linux frame buffer: embedded devices"),
    ("PySide6/Qt/plugins/platforms/libqvnc.so", "VNC server platform"),
    ("PySide6/Qt/plugins/platforms/libqvkkhrdisplay.so", "Vulkan display: embedded devices"),
    ("PySide6/Qt/plugins/platforms/libqminimalegl.so", "EGL test platform"),
    ("PySide6/Qt/plugins/egldeviceintegrations/*", "eglfs back-ends (see libqeglfs)"),
    ("PySide6/Qt/plugins/platformthemes/libqgtk3.so", "GTK theme bridge: pulls GTK, Pango, Cairo; the app has its "
     "own dark theme"),
    ("PySide6/Qt/plugins/networkinformation/*", "the app uses no Qt networking"),
    ("PySide6/Qt/plugins/tls/*", "the app uses no Qt networking"),
    ("PySide6/Qt/plugins/generic/*", "evdev/tuio raw input: embedded devices"),
    ("PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so*", "eglfs (see above)"),
    ("PySide6/Qt/lib/libQt6EglFsKmsSupport.so*", "eglfs (see above)"),
    ("PySide6/Qt/lib/libQt6Test.so*", "Qt Test"),
    ("PySide6/Qt/lib/libQt6Network.so*", "the app uses no Qt networking"),
    ("pydicom/data/test_files/*", "pydicom's test files"),
    ("monai/*/tests/*", "tests"),
)


#: torch packages whose Python sources stay in the app (the rest of torch is compiled into the PYZ only): the ones
#: that call torch.jit.script / read sources when imported or when a scripted helper first runs.
TORCH_SOURCES: tuple[str, ...] = (
    "torch.jit", "torch._jit_internal", "torch._sources", "torch._decomp", "torch._functorch", "torch.distributions",
    "torch.utils.mkldnn", "torch.ao.quantization", "torch.nn", "torch.functional", "torch._refs", "torch._prims",
    # config modules: torch.utils._config_module reads their own source when they are imported
    "torch._export.config", "torch.fx.experimental._config", "torch.distributed.config", "torch._dynamo.config",
    "torch.compiler.config", "torch.utils.serialization.config", "torch.utils._config_module",
)


#: Package data rewritten without its indentation (the same JSON, parsed identically): highdicom's table of every
#: DICOM module's attributes is 22 MB pretty-printed, 16 MB compact.
MINIFY_JSON: tuple[str, ...] = ("highdicom/_standard/*.json",)


def _normal(path: str) -> str:
    return path.replace("\\", "/")


def excluded_file(path: str) -> str | None:
    """The reason ``path`` (relative to the bundle's ``_internal``) is left out of the app, or None to keep it."""
    path = _normal(path)
    for pattern, reason in EXCLUDED_FILES:
        if fnmatch.fnmatchcase(path, pattern):
            return reason
    return None


def not_tests(name: str) -> bool:
    """True for a module that is not part of a package's tests or benchmarks."""
    return not any(part in ("tests", "test", "testing", "benchmarks") for part in name.split("."))


#: MONAI packages the app reaches: the bundle allow-list (inference/safety.py) plus what ConfigParser, the detection
#: pipeline and MetaTensor import. Everything else in monai.apps (pathology, auto3dseg, nnunet, ...) is left out.
MONAI_APPS_WANTED = ("monai.apps.detection", "monai.apps.utils", "monai.apps.datasets", "monai.apps.mmars")


def monai_module_wanted(name: str) -> bool:
    """The hidden-import filter for MONAI's submodules."""
    if not not_tests(name):
        return False
    if name.startswith("monai.apps.") and not name.startswith(MONAI_APPS_WANTED):
        return False
    return not name.startswith(("monai.handlers", "monai.fl", "monai.visualize.img2tensorboard"))
