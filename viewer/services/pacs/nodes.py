"""PACS nodes the user configured: what to contact and how, with secrets kept out of logs and reprs.

A node is plain data; the GUI stores a list of them in QSettings (``viewer.qt.settings``) as JSON via
:func:`nodes_to_json` / :func:`nodes_from_json`, and the CLI reads the same settings or builds one from flags.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from urllib.parse import urlsplit


class NodeKind(str, Enum):
    """How a node is reached."""

    DICOMWEB = "dicomweb"
    DIMSE = "dimse"


class AuthKind(str, Enum):
    """DICOMweb authentication."""

    NONE = "none"
    BASIC = "basic"
    BEARER = "bearer"


class RetrieveRoute(str, Enum):
    """How a DIMSE node is asked for images (DICOMweb always uses WADO-RS)."""

    C_GET = "c-get"
    C_MOVE = "c-move"


class NodeError(ValueError):
    """A node's settings are incomplete or invalid; the message names the field."""


def _valid_aet(value: str) -> bool:
    return 0 < len(value) <= 16 and value.isascii() and "\\" not in value and value.strip() == value


@dataclass(frozen=True)
class PacsNode:
    """One PACS the user configured.

    DICOMweb nodes use ``url`` (the service root, e.g. ``http://127.0.0.1:8042/dicom-web``) with optional
    ``auth``: ``basic`` (``username`` + ``secret``) or ``bearer`` (``secret`` is the token). DIMSE nodes use
    ``aet`` / ``host`` / ``port`` (the PACS), ``our_aet`` (ours, which the PACS must know for C-MOVE) and
    ``storage_port`` (where our storage SCP listens during a C-MOVE; 0 = C-GET only). ``timeout_s`` bounds every
    connection and response wait.
    """

    name: str
    kind: NodeKind = NodeKind.DICOMWEB
    url: str = ""
    auth: AuthKind = AuthKind.NONE
    username: str = ""
    secret: str = field(default="", repr=False)
    aet: str = ""
    host: str = ""
    port: int = 0
    our_aet: str = "HOUNSFIELD"
    storage_port: int = 0
    retrieve_route: RetrieveRoute = RetrieveRoute.C_GET
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", NodeKind(self.kind))
        object.__setattr__(self, "auth", AuthKind(self.auth))
        object.__setattr__(self, "retrieve_route", RetrieveRoute(self.retrieve_route))

    def validate(self) -> PacsNode:
        """Return ``self`` or raise :class:`NodeError` naming the first field that is wrong."""
        if not self.name.strip():
            raise NodeError("name: a node needs a name")
        if not 0 < self.timeout_s <= 600:
            raise NodeError("timeout_s: between 0 and 600 seconds")
        if self.kind is NodeKind.DICOMWEB:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise NodeError("url: an http(s) URL of the DICOMweb service root is needed")
            if parts.username is not None or parts.password is not None:
                # the URL is shown in messages, the node list and logs: credentials go in username / secret
                raise NodeError("url: put no user name or password in the URL; use the authentication fields")
            if self.auth is AuthKind.BASIC and not self.username:
                raise NodeError("username: basic authentication needs a user name")
            if self.auth is not AuthKind.NONE and not self.secret:
                raise NodeError("secret: the password or token is missing")
        else:
            if not _valid_aet(self.aet):
                raise NodeError("aet: the PACS AE title (1-16 ASCII characters) is needed")
            if not _valid_aet(self.our_aet):
                raise NodeError("our_aet: our AE title (1-16 ASCII characters) is needed")
            if not self.host:
                raise NodeError("host: the PACS host is needed")
            if not 0 < self.port < 65536:
                raise NodeError("port: 1-65535")
            if not 0 <= self.storage_port < 65536:
                raise NodeError("storage_port: 0-65535 (0: no storage SCP, C-GET only)")
            if self.retrieve_route is RetrieveRoute.C_MOVE and not self.storage_port:
                raise NodeError("storage_port: C-MOVE needs our storage port")
        return self

    def describe(self) -> str:
        """Where the node is, for messages and logs (never the secret)."""
        if self.kind is NodeKind.DICOMWEB:
            return f"{self.name} (DICOMweb {self.url})"
        return f"{self.name} (DIMSE {self.aet}@{self.host}:{self.port})"

    def to_dict(self) -> dict:
        """Plain JSON-able dict (enums as their values), secret included: for the settings store only."""
        data = asdict(self)
        for key in ("kind", "auth", "retrieve_route"):
            data[key] = getattr(self, key).value
        return data

    @classmethod
    def from_dict(cls, data: dict) -> PacsNode:
        """Build from :meth:`to_dict` output; unknown keys are ignored, wrong types raise :class:`NodeError`."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        try:
            node = cls(**known)
            return replace(node, port=int(node.port), storage_port=int(node.storage_port),
                           timeout_s=float(node.timeout_s))
        except (TypeError, ValueError) as exc:
            raise NodeError(f"invalid node settings: {exc}") from None


def nodes_to_json(nodes: list[PacsNode]) -> str:
    """Serialise nodes for the settings store."""
    return json.dumps([node.to_dict() for node in nodes])


def nodes_from_json(text: str) -> list[PacsNode]:
    """Parse the settings store's JSON; raises :class:`NodeError` on anything that is not a list of nodes."""
    try:
        data = json.loads(text or "[]")
    except json.JSONDecodeError as exc:
        raise NodeError(f"PACS node settings are not JSON: {exc}") from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise NodeError("PACS node settings must be a list of objects")
    return [PacsNode.from_dict(item) for item in data]
