"""Models and how they run. No Qt and no ``viewer`` imports; importing this package loads no torch.

Modules (torch and MONAI are imported only inside the functions that need them):

- :mod:`inference.registry` - which models exist (built-in bundles, user models folders), ``ModelInfo``, trust.
- :mod:`inference.bundle` - build a MONAI bundle offline (``load_bundle``) after :mod:`inference.safety` has
  checked its config against the allow-list.
- :mod:`inference.task` - run it on a volume: ``infer(bundle, array, affine, reporter=None)`` on the calling
  thread (batch: load once, call per volume), or as a cancellable job (``run_model``, ``run_bundle``, ``run_job``).
- :mod:`inference.types` - results on the volume's grid (``SegResult``, ``Detections``, ``SaliencyMap``).
- :mod:`inference.geometry` - our ``(z, y, x)`` + LPS grid <-> MONAI's ``(x, y, z)`` + RAS convention.
- :mod:`inference.device` - cuda > mps > cpu, threads, CPU fallback on GPU out-of-memory.
- :mod:`inference.resources` - where the shipped ``resources/`` folder is (checkout, wheel, frozen app).
- :mod:`inference.models` - model pieces (a torchvision-free ResNet+FPN for MONAI's RetinaNet).
"""
import os as _os

# Large CPU tensors on transparent huge pages (PyTorch's allocator reads this once, at its first allocation, so it
# is set here, before any of our code imports torch; a user's own setting wins). Without it every large tensor is
# fresh 4 KiB pages: on LIDC-IDRI-0001 (one thread) the built-in network took 5.0-5.3 s instead of 3.2-3.7 s and
# "run all" 9.4 s instead of 6.8-7.3 s, the same results bit for bit. Kernels set to "never" ignore it.
_os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
