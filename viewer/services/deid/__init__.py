"""De-identified export: PS3.15 Annex E Basic Profile (+ options), consistent UID remapping, burned-in flagging.

``anonymize_job(sources, out_dir, DeidOptions(...))`` is the one entry point; the CLI (``hounsfield anonymize``)
and the GUI (File > Export De-identified…) both run it. See :mod:`viewer.services.deid.profile` for where the
attribute table comes from and how its actions are resolved.
"""
from viewer.services.deid.export import DeidOptions, DeidReport, anonymize_job, burned_in_reason, iter_report_lines
from viewer.services.deid.profile import Profile

__all__ = ["DeidOptions", "DeidReport", "Profile", "anonymize_job", "burned_in_reason", "iter_report_lines"]
