"""Which presentation contexts a DIMSE association proposes: at most 128, chosen from the SOP classes at hand.

An association carries at most 128 presentation contexts, and the acceptor picks one transfer syntax per context.
For C-GET the PACS sends an instance in its original encoding only when we accepted a context for that SOP class
with that very transfer syntax; otherwise it transcodes (or fails). So :func:`plan_get_contexts` proposes one
context per (SOP class, transfer syntax) for the SOP classes a C-FIND found - never the naive list of every storage
class - in priority order, dropping the least useful ones when 128 would be exceeded. :func:`batch_send_contexts`
groups files to send so that each association stays within the limit.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from pydicom import uid as tsuid
from pynetdicom import build_context, build_role
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext

#: Most presentation contexts one association may propose (PS3.8 9.3.2.2: context IDs are odd numbers 1-255).
MAX_CONTEXTS = 128

UNCOMPRESSED = (tsuid.ExplicitVRLittleEndian, tsuid.ImplicitVRLittleEndian)

#: Compressed or less common encodings a PACS may hold, most worth keeping first (lossless before lossy, the
#: ones a PACS is least likely to be able to transcode first).
ENCODED = (
    tsuid.JPEG2000Lossless,
    tsuid.JPEGLosslessSV1,
    tsuid.JPEGLSLossless,
    tsuid.RLELossless,
    tsuid.JPEG2000,
    tsuid.JPEGBaseline8Bit,
    tsuid.JPEGExtended12Bit,
    tsuid.JPEGLSNearLossless,
    tsuid.JPEGLossless,
    tsuid.DeflatedExplicitVRLittleEndian,
    tsuid.ExplicitVRBigEndian,
)

#: Every transfer syntax we accept when storing (our storage SCP, C-GET sub-operations).
ACCEPTED = UNCOMPRESSED + ENCODED

#: SOP class UID prefixes / values that never carry pixel data: no use proposing image compression for them.
_NON_IMAGE_PREFIXES = (
    "1.2.840.10008.5.1.4.1.1.88.",  # structured reports
    "1.2.840.10008.5.1.4.1.1.11.",  # presentation states
    "1.2.840.10008.5.1.4.1.1.104.",  # encapsulated PDF / CDA / STL
)
_NON_IMAGE = {
    "1.2.840.10008.5.1.4.1.1.481.3",  # RT structure set
    "1.2.840.10008.5.1.4.1.1.481.5",  # RT plan
    "1.2.840.10008.5.1.4.1.1.67",  # real world value mapping
    "1.2.840.10008.5.1.4.1.1.66",  # raw data
}


def may_carry_pixels(sop_class: str) -> bool:
    """False for SOP classes known to hold no pixel data (SR, presentation states, RT structure sets...)."""
    return sop_class not in _NON_IMAGE and not sop_class.startswith(_NON_IMAGE_PREFIXES)


def plan_get_contexts(query_model: str, sop_classes: Iterable[str],
                      limit: int = MAX_CONTEXTS) -> tuple[list[PresentationContext],
                                                          list[SCP_SCU_RoleSelectionNegotiation]]:
    """The contexts and SCP role selections for a C-GET of instances of ``sop_classes``.

    Priority: the query model; one uncompressed context per SOP class (so every instance can arrive); an
    implicit-VR-only context per class (so implicit files keep their encoding); then, transfer syntax by transfer
    syntax, the encoded ones for classes that can hold pixels - while the total stays within ``limit``. A study
    with more than ``limit - 1`` SOP classes raises ValueError (no single C-GET can receive it).
    """
    classes = sorted(dict.fromkeys(c for c in sop_classes if c))
    if len(classes) > limit - 1:
        raise ValueError(f"{len(classes)} SOP classes do not fit in one association ({limit - 1} at most)")
    contexts = [build_context(query_model)]
    contexts += [build_context(c, list(UNCOMPRESSED)) for c in classes]
    tiers: list[tuple[str, str]] = [(c, tsuid.ImplicitVRLittleEndian) for c in classes]
    tiers += [(c, ts) for ts in ENCODED for c in classes if may_carry_pixels(c)]
    for sop_class, syntax in tiers:
        if len(contexts) >= limit:
            break
        contexts.append(build_context(sop_class, [syntax]))
    roles = [build_role(c, scp_role=True) for c in classes]
    return contexts, roles


def storage_contexts(sop_classes: Iterable[str]) -> list[PresentationContext]:
    """Contexts our storage SCP supports: each SOP class with every transfer syntax in :data:`ACCEPTED`.

    (The 128 limit binds the requestor only; an acceptor may support any number.)
    """
    return [build_context(c, list(ACCEPTED)) for c in sorted(dict.fromkeys(c for c in sop_classes if c))]


def send_context(sop_class: str, syntax: str) -> tuple[str, tuple[str, ...]]:
    """The (abstract syntax, transfer syntaxes) proposed to C-STORE one file: uncompressed files offer both
    little-endian encodings (pynetdicom converts between them), encoded ones only their own."""
    if syntax in UNCOMPRESSED:
        return sop_class, (syntax, *(ts for ts in UNCOMPRESSED if ts != syntax))
    return sop_class, (syntax,)


def batch_send_contexts(keys: Sequence[tuple[str, tuple[str, ...]]],
                        limit: int = MAX_CONTEXTS) -> list[list[int]]:
    """Split items (their :func:`send_context` keys) into batches whose distinct contexts number ≤ ``limit``.

    Returns lists of indices into ``keys``, in their original order within each batch.
    """
    batches: list[list[int]] = []
    seen: list[set] = []
    for index, key in enumerate(keys):
        for batch, contexts in zip(batches, seen):
            if key in contexts or len(contexts) < limit:
                batch.append(index)
                contexts.add(key)
                break
        else:
            batches.append([index])
            seen.append({key})
    return batches


def contexts_for(keys: Iterable[tuple[str, tuple[str, ...]]]) -> list[PresentationContext]:
    """The presentation contexts of a batch of :func:`send_context` keys."""
    return [build_context(sop_class, list(syntaxes)) for sop_class, syntaxes in dict.fromkeys(keys)]
