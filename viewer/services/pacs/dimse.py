"""The DIMSE client (pynetdicom): C-ECHO, C-FIND, C-GET / C-MOVE into the retrieve cache, C-STORE.

Each operation opens one association, uses it from the job's thread only and releases it (or aborts it on cancel or
error) before the job ends: pynetdicom associations are not thread-safe and a client holds nothing between calls.
A retrieve first plans (:meth:`DimseClient._plan`): the study's SOP classes (SOPClassesInStudy) - so that a C-GET
proposes only those storage contexts, within the 128-context limit (:mod:`~viewer.services.pacs.dimse_contexts`) -
and the study's or series' instance count; a PACS that does not return them has every instance listed (C-FIND at
IMAGE level), as has one from which fewer instances arrived than planned, to name what is missing. Instances reach
the job through a queue from the thread that receives them; the C-GET / C-MOVE responses are read by a helper thread
that owns nothing but that loop, so the job can announce each instance and honour a cancel even while the PACS is
silent.

Speed. A C-GET or C-MOVE is one C-STORE sub-operation per instance, and the PACS sends the next instance only once
the previous one is answered: every per-instance cost is paid in series. LIDC-IDRI-0001 (133 slices, 70 MB) from
Orthanc on loopback took 1.1 s by C-GET and 1.2 s by C-MOVE with pynetdicom as it comes (12-14x a plain HTTP download
of the same bytes); each step below, measured on that study:

- Nagle / delayed ACK: the last short segment of a message waited for an ACK the receiver delays up to 40 ms.
  TCP_NODELAY on our sockets, TCP_QUICKACK re-armed after each read (:mod:`.dimse_transport`); Orthanc's DICOM side
  needs TCP_NODELAY=1 in its environment (dcmtk's getscu: 6 s, 0.16 s with it at both ends).
- Polling: pynetdicom's reactor slept 1 ms whenever it found nothing to do; it now blocks on the socket and a wake-up
  pipe (:class:`~.dimse_transport.TunedSocket`), and does not block while an event is queued (an association's
  A-ASSOCIATE-RQ waited 50-60 ms behind the connection's own event). After a release pynetdicom's ``kill`` polled
  every 10 ms: 0.5 ms now. Our storage SCP's accept loop polls for a stop every 10 ms, not 0.5 s.
- PDUs of up to 4 MiB (pynetdicom proposes 16 KiB; Orthanc then sends 128 KiB): 4,300 PDUs became 530.
- Files written from the received bytes with a File Meta encoded directly, the data set never decoded
  (:mod:`.part10`). With these, pynetdicom's path took 0.36-0.6 s.
- The lean lane (:mod:`.dimse_lane`): after pynetdicom negotiates, the retrieve's data phase is read off the socket
  into one buffer and each fragment written to its file from there; command sets are parsed and encoded directly.
  pynetdicom cost 2-3 ms of Python per instance (objects per PDU, three threads per message, a pydicom Dataset per
  command); the lane, ~0.25 ms. It creates the next instance's file while the PACS reads that instance.
- Planning by two one-match C-FINDs (~10 ms) instead of listing 133 instances (90 ms: Orthanc reads every file
  for its SOP class, pynetdicom decodes every match).

Now ~0.11-0.17 s by either route: the PACS's own pace (a C-MOVE to a storage SCP that writes nothing) is ~0.07-0.1 s,
and the rest is creating and writing 133 files, one after the other as the PACS waits (``bench_pacs``).
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydicom import Dataset
from pydicom.uid import UID
from pynetdicom import build_context, evt
from pynetdicom.association import Association
from pynetdicom.status import QR_GET_SERVICE_CLASS_STATUS, QR_MOVE_SERVICE_CLASS_STATUS

from inference.jobs import Cancelled, CancelToken, Job, Progress, is_cancelled
from viewer.services.pacs import dimse_lane
from viewer.services.pacs.cache import RetrieveCache, checked_uid
from viewer.services.pacs.dimse_assoc import CANCELLED, PENDING, associate, describe_status, finish, status_code
from viewer.services.pacs.dimse_contexts import plan_get_contexts
from viewer.services.pacs.dimse_send import send_files
from viewer.services.pacs.dimse_storage import Receiver, StorageServer, local_address_towards
from viewer.services.pacs.model import (
    EchoResult,
    PacsError,
    QueryFilter,
    RetrieveProgressPayload,
    RetrieveResult,
    SendResult,
    SeriesHit,
    StudyHit,
)
from viewer.services.pacs.nodes import PacsNode, RetrieveRoute

# Study Root query/retrieve information models and Verification (pynetdicom's sop_class names are dynamic,
# so typed code spells the UIDs).
FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
GET = "1.2.840.10008.5.1.4.1.2.2.3"
VERIFICATION = "1.2.840.10008.1.1"
MOVE_UNKNOWN_DESTINATION = 0xA801
#: Storage classes proposed when a PACS lists instances without their SOP class (it need not return it).
COMMON_CLASSES = tuple("1.2.840.10008.5.1.4.1.1." + suffix for suffix in (
    "2", "2.1", "4", "4.1", "7", "1", "1.1", "1.2", "6.1", "3.1", "12.1", "20", "128", "130", "481.1", "481.2",
    "481.3", "66.4", "88.11", "88.22", "88.33", "88.34", "11.1", "88.59"))
#: How long a cancelled C-GET / C-MOVE may take to acknowledge the C-CANCEL before we abort the association.
CANCEL_GRACE_S = 1.0


class DimseClient:
    """A :class:`~viewer.services.pacs.model.PacsClient` for a DIMSE node (see the module doc)."""

    def __init__(self, node: PacsNode) -> None:
        self.node = node.validate()

    # -- C-ECHO ---------------------------------------------------------------------------------------------------
    def echo(self) -> EchoResult:
        """C-ECHO; never raises: the reason of a failure is in the result's message."""
        started = time.monotonic()
        assoc = None
        try:
            assoc = associate(self.node, [build_context(VERIFICATION)], service="verification (C-ECHO)")
            code = status_code(assoc.send_c_echo())
            seconds = time.monotonic() - started
            if code == 0:
                return EchoResult(True, seconds)
            why = "no answer" if code is None else describe_status(code)
            return EchoResult(False, seconds, f"{self.node.describe()} answered C-ECHO with {why}")
        except PacsError as exc:
            return EchoResult(False, time.monotonic() - started, str(exc))
        except Exception as exc:  # e.g. an OS error from the socket layer: reported, never raised
            return EchoResult(False, time.monotonic() - started, f"{self.node.describe()}: {exc}")
        finally:
            finish(assoc, True)

    # -- C-FIND ---------------------------------------------------------------------------------------------------
    def query_studies(self, query: QueryFilter, cancel: CancelToken | None = None) -> Job[list[StudyHit]]:
        """Studies matching ``query``, one page (``limit`` from ``offset``), paged locally: the C-FIND is
        cancelled (C-CANCEL) once the page is full."""
        keys = Dataset()
        texts = [_clean(v) for v in (query.patient_name, query.patient_id, query.accession)]
        if not all(text.isascii() for text in texts):
            keys.SpecificCharacterSet = "ISO_IR 192"  # UTF-8, for names beyond ASCII
        keys.QueryRetrieveLevel = "STUDY"
        keys.PatientName, keys.PatientID, keys.AccessionNumber = texts
        keys.StudyDate = query.date_range()
        keys.ModalitiesInStudy = _clean(query.modality).upper()
        keys.StudyInstanceUID = _clean(query.study_uid)
        keys.StudyDescription = ""
        keys.NumberOfStudyRelatedSeries = ""
        keys.NumberOfStudyRelatedInstances = ""
        hits: list[StudyHit] = []
        enough = max(0, query.offset) + max(0, query.limit)
        for index, found in enumerate((yield from self._find(keys, "studies", enough, cancel))):
            if index >= query.offset:
                hits.append(_study_hit(found))
        return hits

    def query_series(self, study_uid: str, cancel: CancelToken | None = None) -> Job[list[SeriesHit]]:
        """The series of one study (C-FIND at SERIES level), by series number."""
        keys = Dataset()
        keys.QueryRetrieveLevel = "SERIES"
        keys.StudyInstanceUID = _uid(study_uid)
        keys.SeriesInstanceUID = ""
        keys.Modality = ""
        keys.SeriesNumber = ""
        keys.SeriesDescription = ""
        keys.NumberOfSeriesRelatedInstances = ""
        found = yield from self._find(keys, "series", None, cancel)
        hits = [_series_hit(study_uid, item) for item in found]
        return sorted(hits, key=lambda hit: (hit.series_number is None, hit.series_number or 0, hit.series_uid))

    def _find(self, keys: Dataset, what: str, enough: int | None,
              cancel: CancelToken | None) -> Job[list[Dataset]]:
        """Run one C-FIND; stop (C-CANCEL) after ``enough`` matches or on cancel."""
        yield Progress(0, 0, f"Querying {what}")
        if is_cancelled(cancel):
            raise Cancelled()
        assoc = associate(self.node, [build_context(FIND)], service="study root query (C-FIND)")
        ok = False
        try:
            found = yield from self._find_on(assoc, keys, what, enough, cancel)
            ok = True
            return found
        finally:
            finish(assoc, ok)

    def _find_on(self, assoc: Association, keys: Dataset, what: str, enough: int | None,
                 cancel: CancelToken | None, msg_id: int = 1) -> Job[list[Dataset]]:
        """One C-FIND on an open association (see :meth:`_find`); the association is left as it is."""
        found: list[Dataset] = []
        cancelled_find = enough == 0
        if cancelled_find:
            return found
        responses = assoc.send_c_find(keys, FIND, msg_id=msg_id)
        for status, identifier in responses:
            code = status_code(status)
            if code is None:
                raise PacsError(f"{self.node.describe()} did not answer the query within "
                                f"{self.node.timeout_s:g} s")
            if code not in PENDING:
                if code not in (0, CANCELLED):
                    raise PacsError(f"{self.node.describe()} refused the query: {describe_status(code)}")
                break
            if cancelled_find or identifier is None:
                continue  # after a C-CANCEL the PACS may still send matches; drain them
            found.append(identifier)
            yield Progress(len(found), enough or 0, f"Found {len(found)} {what}")
            if is_cancelled(cancel):
                assoc.send_c_cancel(msg_id, query_model=FIND)
                raise Cancelled()
            if enough is not None and len(found) >= enough:
                assoc.send_c_cancel(msg_id, query_model=FIND)
                cancelled_find = True
        return found

    # -- retrieve -------------------------------------------------------------------------------------------------
    def retrieve(self, study_uid: str, series_uid: str | None, cache: object,
                 cancel: CancelToken | None = None) -> Job[RetrieveResult]:
        """A study (``series_uid`` None) or one series into ``cache`` by C-GET or C-MOVE (the node's route),
        announcing each instance; a failure or cancel leaves nothing in the cache (see the module doc)."""
        if not isinstance(cache, RetrieveCache):
            raise TypeError("retrieve needs a RetrieveCache")
        started = time.monotonic()
        study_uid = _uid(study_uid)
        series_uid = _uid(series_uid) if series_uid else None
        plan = yield from self._plan(study_uid, series_uid, cancel)
        if not plan.count:
            what = f"series {series_uid}" if series_uid else f"study {study_uid}"
            raise PacsError(f"{self.node.describe()} has no instances of {what}")
        keys = Dataset()
        keys.QueryRetrieveLevel = "SERIES" if series_uid else "STUDY"
        keys.StudyInstanceUID = study_uid
        if series_uid:
            keys.SeriesInstanceUID = series_uid
        sop_classes = plan.classes
        if not plan.all_classes:
            sop_classes = sorted(set(plan.classes) | set(COMMON_CLASSES))  # the PACS did not say: the usual ones
        with cache.staging() as staging:
            receiver = Receiver(staging, study_uid, plan.count)
            if self.node.retrieve_route is RetrieveRoute.C_MOVE:
                yield from self._move(keys, sop_classes, receiver, cancel)
            else:
                yield from self._get(keys, sop_classes, plan, receiver, cancel)
            if len(receiver.received) < plan.count:
                yield from self._check_complete(plan, receiver, cancel)
            series_dirs = staging.commit()
            return RetrieveResult(series_dirs, len(receiver.received), staging.n_bytes, time.monotonic() - started)

    def _plan(self, study_uid: str, series_uid: str | None, cancel: CancelToken | None) -> Job[RetrievePlan]:
        """How many instances a retrieve brings, of which SOP classes: from the study's SOPClassesInStudy and the
        study's or series' related-instance count (one or two C-FINDs answering one match each, ~10 ms), else
        - a PACS that does not return them - by listing every instance (:meth:`list_instances`, a C-FIND answering
        a match per instance: 90 ms of LIDC's 133 slices from Orthanc, which reads each file for its SOP class)."""
        yield Progress(0, 0, "Planning the retrieve")
        if is_cancelled(cancel):
            raise Cancelled()
        study_keys = Dataset()
        study_keys.QueryRetrieveLevel = "STUDY"
        study_keys.StudyInstanceUID = study_uid
        study_keys.SOPClassesInStudy = ""
        study_keys.NumberOfStudyRelatedInstances = ""
        series_keys = None
        if series_uid:
            series_keys = Dataset()
            series_keys.QueryRetrieveLevel = "SERIES"
            series_keys.StudyInstanceUID = study_uid
            series_keys.SeriesInstanceUID = series_uid
            series_keys.NumberOfSeriesRelatedInstances = ""
        assoc = associate(self.node, [build_context(FIND)], service="study root query (C-FIND)")
        ok = False
        try:
            studies = yield from self._find_on(assoc, study_keys, "studies", None, cancel)
            series = [] if series_keys is None else (
                yield from self._find_on(assoc, series_keys, "series", None, cancel, msg_id=2))
            ok = True
        finally:
            finish(assoc, ok)
        plan = _plan_from(studies, series, series_uid)
        if plan is None:  # the PACS did not say: list every instance
            listed = yield from self.list_instances(study_uid, series_uid, cancel)
            plan = RetrievePlan.from_listing(listed, series_uid)
        return plan

    def _check_complete(self, plan: RetrievePlan, receiver: Receiver, cancel: CancelToken | None) -> Job[None]:
        """Fewer instances arrived than planned: list what the PACS holds (the count may have been stale) and
        raise PacsError naming what did not arrive."""
        listed = plan.listed
        if listed is None:
            listed = yield from self.list_instances(receiver.study_uid, plan.series_uid, cancel)
        missing = [uid for uid in listed if uid not in receiver.received]
        if missing:
            kinds = _names(sorted({listed[uid][1] or "unknown class" for uid in missing}))
            raise PacsError(f"{len(missing)} of {len(listed)} instances ({kinds}) did not arrive from "
                            f"{self.node.describe()}; nothing was cached")

    def list_instances(self, study_uid: str, series_uid: str | None = None,
                       cancel: CancelToken | None = None) -> Job[dict[str, tuple[str, str]]]:
        """SOP instance UID → (series UID, SOP class UID or "" when the PACS does not say) of a study or series
        (C-FIND at IMAGE level): what a retrieve will bring."""
        keys = Dataset()
        keys.QueryRetrieveLevel = "IMAGE"
        keys.StudyInstanceUID = _uid(study_uid)
        keys.SeriesInstanceUID = _uid(series_uid) if series_uid else ""
        keys.SOPInstanceUID = ""
        keys.SOPClassUID = ""
        found = yield from self._find(keys, "instances", None, cancel)
        listed: dict[str, tuple[str, str]] = {}
        for item in found:
            sop, series, sop_class = (str(item.get(k, "")) for k in ("SOPInstanceUID", "SeriesInstanceUID",
                                                                      "SOPClassUID"))
            if sop and series:
                listed[sop] = (series, sop_class)
        return listed

    def _get(self, keys: Dataset, sop_classes: list[str], plan: RetrievePlan, receiver: Receiver,
             cancel: CancelToken | None) -> Job[None]:
        try:
            contexts, roles = plan_get_contexts(GET, sop_classes)
        except ValueError as exc:
            raise PacsError(f"cannot retrieve by C-GET: {exc}; use C-MOVE for this node") from None
        assoc = associate(self.node, contexts, roles=roles, service="study root retrieve (C-GET)",
                          handlers=[(evt.EVT_C_STORE, receiver.handle_store)])
        # A PACS refuses the SCP role for SOP classes it does not know: those instances could never arrive.
        receivable = {cx.abstract_syntax for cx in assoc.accepted_contexts if cx.as_scp}
        refused = [sop_class for sop_class in plan.classes if sop_class not in receivable]
        if refused and plan.listed is None and plan.series_uid:  # the study's classes: are they in this series?
            try:
                listed = yield from self.list_instances(receiver.study_uid, plan.series_uid, cancel)
            except BaseException:
                assoc.abort()
                raise
            plan.listed = listed
            refused = sorted({sop_class for _, sop_class in listed.values()} & set(refused))
        if refused:
            assoc.release()
            raise PacsError(f"{self.node.describe()} will not send {_names(refused)} by C-GET (it accepted no "
                            "storage context for them); retrieve by C-MOVE instead")
        yield from self._follow(assoc, _requester(assoc, receiver, self.node.timeout_s, keys, GET), GET,
                                receiver, cancel, QR_GET_SERVICE_CLASS_STATUS)

    def _move(self, keys: Dataset, sop_classes: list[str], receiver: Receiver,
              cancel: CancelToken | None) -> Job[None]:
        node = self.node
        address = local_address_towards(node.host, node.port)
        with StorageServer(node.our_aet, address, node.storage_port, sop_classes, receiver, node.timeout_s):
            assoc = associate(node, [build_context(MOVE)], service="study root retrieve (C-MOVE)")
            yield from self._follow(assoc, _requester(assoc, None, node.timeout_s, keys, MOVE, node.our_aet), MOVE,
                                    receiver, cancel, QR_MOVE_SERVICE_CLASS_STATUS)

    def _follow(self, assoc: Association, request: Callable[[], Iterator], model: str, receiver: Receiver,
                cancel: CancelToken | None, statuses: dict) -> Job[None]:
        """Send the C-GET / C-MOVE (``request``) and announce instances as they arrive until its final response;
        cancel on request. The association is released or aborted before this returns."""
        events: queue.Queue[tuple] = receiver.queue
        total = receiver.expected
        ok = False
        reader = None
        try:
            try:
                responses = request()
            except (RuntimeError, ValueError) as exc:  # the association ended, or the keys cannot be encoded
                raise PacsError(f"cannot send the retrieve request to {self.node.describe()}: {exc}") from None
            reader = threading.Thread(target=_read_responses, args=(responses, events), name="dimse-responses",
                                      daemon=True)
            reader.start()
            while True:
                if is_cancelled(cancel):
                    receiver.close()
                    _cancel(assoc, model, reader)
                    raise Cancelled()
                try:
                    item = events.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item[0] == "stored":
                    _, series_uid, path, count = item
                    yield Progress(count, total, f"Received {count}/{total} instances",
                                   RetrieveProgressPayload(series_uid, Path(path), count, total))
                elif item[0] == "failed":
                    raise PacsError(f"lost the association with {self.node.describe()}: {item[1]}")
                elif item[0] == "done":
                    self._check_final(item[1], statuses, len(receiver.received))
                    ok = True
                    return
        finally:
            receiver.close()
            finish(assoc, ok)
            if reader is not None:
                reader.join(timeout=self.node.timeout_s)

    def _check_final(self, final: Dataset | None, statuses: dict, received: int) -> None:
        """Raise PacsError unless the final C-GET / C-MOVE status is success or a warning (a missing instance is
        then found by the caller)."""
        code = status_code(final)
        node, where = self.node, self.node.describe()
        if code is None:
            raise PacsError(f"{where} stopped answering the retrieve (no response within {node.timeout_s:g} s)")
        if code == 0 or 0xB000 <= code <= 0xBFFF:
            return
        unknown_ae = (f"the PACS does not know our AE title {node.our_aet}; add it to the PACS's modalities "
                      f"(this computer's address, port {node.storage_port})")
        if code == MOVE_UNKNOWN_DESTINATION:
            raise PacsError(f"{where}: {unknown_ae}")
        if code == CANCELLED:
            raise PacsError(f"{where} cancelled the retrieve")
        if node.retrieve_route is RetrieveRoute.C_MOVE and not received:
            failed = int(getattr(final, "NumberOfFailedSuboperations", 0) or 0)
            if failed:
                raise PacsError(f"{where} could not send us any instance ({failed} failed): check that the PACS "
                                f"has our AE title {node.our_aet} at this computer's address, port "
                                f"{node.storage_port}, and that no firewall blocks that port")
            # Orthanc answers an unknown move destination with a bare 0xC000, not 0xA801
            raise PacsError(f"{where} refused the C-MOVE ({describe_status(code, statuses)}) before sending "
                            f"anything; most often {unknown_ae}")
        raise PacsError(f"{where} refused the retrieve: {describe_status(code, statuses)}")

    # -- C-STORE --------------------------------------------------------------------------------------------------
    def send(self, paths: list[Path], cancel: CancelToken | None = None) -> Job[list[SendResult]]:
        """C-STORE each file (original encoding); one result per file, unreadable files included."""
        return (yield from send_files(self.node, [Path(p) for p in paths], cancel))


@dataclass
class RetrievePlan:
    """What a retrieve expects: ``count`` instances of SOP ``classes`` (every class when ``all_classes``);
    ``listed`` (SOP instance UID → (series UID, SOP class or "")) when the instances were listed one by one."""

    count: int
    classes: list[str]
    all_classes: bool
    series_uid: str | None = None
    listed: dict[str, tuple[str, str]] | None = None

    @classmethod
    def from_listing(cls, listed: dict[str, tuple[str, str]], series_uid: str | None = None) -> RetrievePlan:
        classes = sorted({sop_class for _, sop_class in listed.values() if sop_class})
        return cls(len(listed), classes, all(sop_class for _, sop_class in listed.values()), series_uid, listed)


def _plan_from(studies: list[Dataset], series: list[Dataset], series_uid: str | None) -> RetrievePlan | None:
    """The plan from the study-level (and series-level) matches, or None when they do not tell enough: not
    exactly one match, or no SOP classes or instance count in it."""
    if len(studies) != 1 or (series_uid and len(series) != 1):
        return None
    value = studies[0].get("SOPClassesInStudy", None)  # a UID, a MultiValue of them, or None
    classes = [value] if isinstance(value, str) else list(value or [])
    try:
        checked = [checked_uid(str(c)) for c in classes]
    except ValueError:
        return None
    count = _count(series[0], "NumberOfSeriesRelatedInstances") if series_uid else _count(
        studies[0], "NumberOfStudyRelatedInstances")
    if not checked or count is None:
        return None
    return RetrievePlan(count, sorted(set(checked)), True, series_uid)


def _requester(assoc: Association, receiver: Receiver | None, timeout_s: float, keys: Dataset, model: str,
               destination: str | None = None) -> Callable[[], Iterator]:
    """What sends the C-GET (``destination`` None) or C-MOVE request and yields its responses: the lean lane
    (:mod:`~viewer.services.pacs.dimse_lane`) where it can take the association, else pynetdicom."""

    def by_pynetdicom() -> Iterator:
        if destination is None:
            return assoc.send_c_get(keys, model, msg_id=1)
        return assoc.send_c_move(keys, destination, model, msg_id=1)

    def request() -> Iterator:
        if not dimse_lane.ENABLED:
            return by_pynetdicom()
        try:
            lane = dimse_lane.Lane(assoc, receiver, timeout_s)
            return lane.retrieve(keys, model, destination)
        except (dimse_lane.LaneError, RuntimeError):  # not a tuned socket, or its reactor would not yield it
            return by_pynetdicom()

    return request


def _read_responses(responses: Iterator, events: queue.Queue) -> None:
    """Helper thread: wait for the C-GET / C-MOVE responses and pass the final one on (None: no answer)."""
    final = None
    try:
        for status, _identifier in responses:
            code = status_code(status)
            if code in PENDING:
                continue
            final = status if code is not None else None
            break
    except Exception as exc:  # the association broke under us: tell the job, which reports it
        events.put(("failed", str(exc) or type(exc).__name__))
        return
    events.put(("done", final))


def _cancel(assoc: Association, model: str, reader: threading.Thread) -> None:
    """C-CANCEL the retrieve, give the PACS a moment to stop, then abort the association regardless."""
    if assoc.is_established:
        try:
            assoc.send_c_cancel(1, query_model=model)
        except Exception:  # the association ended meanwhile; aborting below is enough
            pass
        reader.join(timeout=CANCEL_GRACE_S)
        assoc.abort()


def _clean(text: str) -> str:
    """Typed text as one DICOM value (a backslash would split it into several)."""
    return (text or "").replace("\\", "").strip()


def _uid(value: str) -> str:
    try:
        return checked_uid(value)
    except ValueError as exc:
        raise PacsError(str(exc)) from None


def _names(sop_classes: list[str]) -> str:
    """SOP classes by name where pydicom knows it, else by UID."""
    return ", ".join(UID(c).name for c in sop_classes)


def _text(item: Dataset, keyword: str) -> str:
    value = item.get(keyword, "")
    return "" if value is None else str(value).strip()


def _count(item: Dataset, keyword: str) -> int | None:
    try:
        return int(_text(item, keyword))
    except ValueError:
        return None


def _study_hit(item: Dataset) -> StudyHit:
    modalities = item.get("ModalitiesInStudy", "") or ""
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split("\\") if m]
    return StudyHit(study_uid=_text(item, "StudyInstanceUID"), patient_name=_text(item, "PatientName"),
                    patient_id=_text(item, "PatientID"), study_date=_text(item, "StudyDate"),
                    description=_text(item, "StudyDescription"), accession=_text(item, "AccessionNumber"),
                    modalities=tuple(str(m) for m in modalities),
                    n_series=_count(item, "NumberOfStudyRelatedSeries"),
                    n_instances=_count(item, "NumberOfStudyRelatedInstances"))


def _series_hit(study_uid: str, item: Dataset) -> SeriesHit:
    return SeriesHit(study_uid=study_uid, series_uid=_text(item, "SeriesInstanceUID"),
                     modality=_text(item, "Modality"), series_number=_count(item, "SeriesNumber"),
                     description=_text(item, "SeriesDescription"),
                     n_instances=_count(item, "NumberOfSeriesRelatedInstances"))
