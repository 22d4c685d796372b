"""The job protocol (generators yielding :class:`Progress`, :class:`CancelToken`) — see :mod:`inference.jobs`."""
from inference.jobs import Cancelled, CancelToken, Job, Progress, is_cancelled, run_job

__all__ = ["CancelToken", "Cancelled", "Job", "Progress", "is_cancelled", "run_job"]
