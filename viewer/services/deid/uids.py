"""The run's UID map and patient pseudonyms: one map per export run, kept on this computer only.

Every instance-identifying UID (Study/Series/SOP Instance, Frame of Reference, the references inside SEG, SR and
RTSTRUCT sequences...) is replaced by :func:`pydicom.uid.generate_uid` (a random UUID-derived ``2.25.`` UID), and
the same old UID always gets the same new one within a map, so references between the exported files stay valid.
Well-known UIDs (SOP classes, transfer syntaxes, coding schemes, anything in the DICOM registry) are not touched.

The map links the pseudonymised files back to the patient: it is written only where the caller says (by default
the user data folder), with owner-only permissions, and never inside the export folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from datetime import datetime
from pathlib import Path

from pydicom.uid import UID, generate_uid

#: UI attributes that name a kind of thing (a class, a syntax, a coding scheme), never an instance: kept as they are.
_KIND_UID = re.compile(r"(Class|TransferSyntax|CodingScheme|Context|MappingResource|ContextGroupExtensionCreator|"
                       r"PrivateInformationCreator|Implementation)UIDs?(InFile)?$|^SOPClassesInStudy$")


def is_well_known(uid: str, keyword: str = "") -> bool:
    """True for UIDs that identify no patient: registered in the DICOM standard, or held by a 'kind' attribute."""
    if not uid:
        return True
    if keyword and _KIND_UID.search(keyword):
        return True
    return bool(UID(uid).keyword)  # registered UIDs (SOP classes, syntaxes, well-known frames) have a keyword


class UidMap:
    """Old UID -> new UID, and original patient -> pseudonym, for one run (optionally continuing a saved map)."""

    def __init__(self, uids: dict[str, str] | None = None, patients: dict[str, dict[str, str]] | None = None,
                 salt: str | None = None) -> None:
        self.uids: dict[str, str] = dict(uids or {})
        self.patients: dict[str, dict[str, str]] = dict(patients or {})
        self.salt = salt or secrets.token_hex(16)  # so a pseudonym is no hash an outsider can recompute

    def new_uid(self, old: str) -> str:
        """The replacement for ``old`` (created on first use)."""
        old = str(old).strip()
        new = self.uids.get(old)
        if new is None:
            new = self.uids[old] = str(generate_uid(prefix=None))  # 2.25.<random UUID>: no organisation root
        return new

    def pseudonym(self, patient_key: str, requested: str = "") -> dict[str, str]:
        """``{"name": ..., "id": ...}`` for the patient ``patient_key`` (original ID + name), the same all run long.

        ``requested`` (the user's pseudonym) goes to the first patient; further patients get ``requested-2``...
        Without it: ``ANON^<8 hex>`` / ``ANON-<8 hex>``, from a salted hash.
        """
        found = self.patients.get(patient_key)
        if found is not None:
            return found
        if requested:
            clean = re.sub(r"[\\\x00-\x1f]", "", requested).strip()[:60] or "ANON"
            taken = {p["id"] for p in self.patients.values()}
            chosen, n = clean, 1
            while chosen in taken:
                n += 1
                chosen = f"{clean}-{n}"
            found = {"name": chosen, "id": chosen}
        else:
            digest = hashlib.sha256((self.salt + patient_key).encode("utf-8", "replace")).hexdigest()[:8].upper()
            found = {"name": f"ANON^{digest}", "id": f"ANON-{digest}"}
        self.patients[patient_key] = found
        return found

    def to_json(self) -> dict:
        """What :meth:`save` writes (contains original identifiers: local use only)."""
        return {"format": "hounsfield-deid-map/1", "written": datetime.now().isoformat(timespec="seconds"),
                "salt": self.salt, "patients": self.patients, "uids": self.uids}

    @classmethod
    def load(cls, path: str | os.PathLike) -> UidMap:
        """A map saved by :meth:`save` (raises ValueError when it is not one)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"cannot read the UID map {path}: {error}") from None
        if not isinstance(data, dict) or data.get("format") != "hounsfield-deid-map/1":
            raise ValueError(f"{path} is not a Hounsfield de-identification map")
        return cls(data.get("uids") or {}, data.get("patients") or {}, data.get("salt"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the map atomically, readable by its owner only."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(self.to_json(), out, indent=1)
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path


def default_map_path() -> Path:
    """A new map file in the user data folder (``deid/uid-map-<time>.json``)."""
    from viewer.core.paths import user_data_dir

    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return user_data_dir() / "deid" / f"uid-map-{stamp}.json"


def short_name(uid: str, length: int = 12) -> str:
    """A short, stable file or folder name for a (new, random) UID."""
    return hashlib.sha1(uid.encode("ascii", "replace")).hexdigest()[:length]
