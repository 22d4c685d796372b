"""Check a MONAI bundle config *before* MONAI parses it, and reduce it to the parts we build.

A bundle config is code: ``_target_`` names any importable callable and ``$...`` strings are ``eval``-ed by
``monai.bundle.ConfigParser``. An untrusted bundle therefore never reaches ConfigParser as written. Instead
:func:`prepare_config` walks only the items we are going to build (the *roots*, e.g. ``network_def``,
``preprocessing``, ``inferer``, ``postprocessing``, ``detector``) and everything they reference, and rewrites
them into a config made of plain literals, ``@references`` and ``_target_`` components whose targets passed
the allow-list. Whatever cannot be rewritten safely is refused, and every refusal is reported with its key path
and value in one :class:`BundleSafetyError`. Items the roots do not reach (datasets, data loaders, evaluators,
handlers, ``initialize``/``run``, ``imports``) are never parsed, checked or executed.

What an untrusted bundle may contain in the items we build
-----------------------------------------------------------
- ``_target_`` naming a class/function in :data:`ALLOWED_MODULES` (checked on the dotted name *and* on the
  resolved object's ``__module__``); bare names are resolved with MONAI's own ``ComponentLocator`` first and
  must land in the allow-list (so ``"eval"`` or ``"system"`` - which Python would find as builtins - are refused).
- ``_mode_`` ``default`` or ``callable`` (``debug`` starts pdb: refused), ``_disabled_``, ``_requires_``, ``_desc_``.
- File readers/writers (``monai.transforms.io``: ``LoadImage(d)``, ``SaveImage(d)``) inside a transform list are
  dropped - the volume is fed in memory and results are returned, not written; anywhere else they are refused.
- ``$`` expressions only of these shapes, which are evaluated here without ``eval``:
  literals and arithmetic/boolean logic over literals and ``@references`` to literals (``$(not @flag)``);
  a call of an allow-listed function with such arguments or ``@references`` (rewritten to a ``_target_``
  component, e.g. ``$monai.networks.nets.resnet.resnet50(spatial_dims=3, ...)``); ``$@net.to(@device)``
  (rewritten to ``@net``: we place the network on the device ourselves); and, in ``detector_ops`` only,
  calls of the detector's configuration methods in :data:`DETECTOR_METHODS`.
- ``%`` macros to the same file (``%::key`` / ``%#key``); macros to other files are refused.
- No argument whose name contains ``pretrained`` set to anything but false/None (it would download weights).

Everything else - ``$import``, lambdas, attribute access, ``__import__``, ``scripts.*`` targets, other modules -
is refused unless the user marked the bundle trusted, in which case the roots and what they reference (plus
``imports``) go to ConfigParser unchanged.

This module imports neither torch nor MONAI at import time (the registry uses its literal evaluator); target
resolution imports the allow-listed MONAI packages on first use.
"""
from __future__ import annotations

import ast
import copy
import importlib
import inspect
import operator
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Module prefixes whose classes and functions an untrusted bundle may instantiate.
#: ``monai.networks`` is narrowed to nets/blocks/layers: ``monai.networks.utils`` writes files
#: (save_state, convert_to_onnx/torchscript).
ALLOWED_MODULES: tuple[str, ...] = (
    "monai.networks.nets",
    "monai.networks.blocks",
    "monai.networks.layers",
    "monai.transforms",
    "monai.inferers",
    "monai.apps.detection",
    "torch.nn",
    "inference.models",
)

#: Inside the allow-list but reading or writing files: dropped from transform lists, refused elsewhere.
FILE_IO_MODULES: tuple[str, ...] = ("monai.transforms.io",)

#: Inside the allow-list but refused outright (they read/write files or open viewers).
DENIED_TARGETS: tuple[str, ...] = (
    "monai.transforms.utils_create_transform_ims",
    "monai.inferers.merger.ZarrAvgMerger",
    "monai.inferers.splitter.WSISlidingWindowSplitter",
)

#: Targets replaced by our own equivalents (MONAI's needs torchvision, which cannot be installed here).
SUBSTITUTES: dict[str, str] = {
    "monai.apps.detection.networks.retinanet_network.resnet_fpn_feature_extractor":
        "inference.models.resnet_fpn.resnet_fpn_feature_extractor",
    "resnet_fpn_feature_extractor": "inference.models.resnet_fpn.resnet_fpn_feature_extractor",
}

#: RetinaNetDetector methods a ``detector_ops`` entry may call (inference settings only).
DETECTOR_METHODS: frozenset[str] = frozenset({
    "set_target_keys", "set_box_selector_parameters", "set_sliding_window_inferer", "set_box_coder_weights",
})

SPECIAL_KEYS = {"_target_", "_disabled_", "_requires_", "_desc_", "_mode_"}
ALLOWED_MODES = {"default", "callable"}

_REF = re.compile(r"@((?:::|#)*[A-Za-z_]\w*(?:(?:::|#)\w+)*)")
_MAX_LITERAL_LEN = 100_000


class _Drop:
    """Marks a list element that is left out (disabled component or file reader/writer)."""


DROP = _Drop()


@dataclass(frozen=True)
class Refusal:
    """One refused config entry: where (``path``), what (``value``) and why (``reason``)."""

    path: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path} = {self.value!s}: {self.reason}"


class BundleSafetyError(Exception):
    """The bundle config contains entries that would run code outside the allow-list.

    ``refusals`` lists each of them; ``str(error)`` says all of them and how to proceed.
    """

    def __init__(self, refusals: Sequence[Refusal], source: str = "configs/inference.json"):
        self.refusals = list(refusals)
        self.source = source
        lines = [f"refused to load {source}: {len(self.refusals)} entr{'y' if len(self.refusals) == 1 else 'ies'} "
                 f"would run code outside the allow-list (mark the bundle trusted only if you trust its author):"]
        lines += [f"  - {r}" for r in self.refusals]
        super().__init__("\n".join(lines))


@dataclass
class PreparedConfig:
    """The reduced config handed to ConfigParser, and what was done to get it.

    ``config`` holds only the roots and the items they reference. ``dropped`` names items left out on purpose
    (file readers/writers, disabled transforms); ``method_calls`` are the checked ``detector_ops`` calls as
    ``(item id, method, kwargs)`` to apply after instantiation (untrusted bundles only).
    """

    config: dict[str, Any]
    roots: list[str]
    dropped: list[str] = field(default_factory=list)
    method_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    trusted: bool = False


class _NotLiteral(Exception):
    pass


def _short(value: Any, limit: int = 120) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def normalize_id(ref: str) -> str:
    """``a#b`` -> ``a::b`` (MONAI accepts both separators)."""
    return ref.replace("#", "::")


def top_key(ref: str) -> str:
    """The top-level config key a reference id points into."""
    return normalize_id(ref).split("::")[0]


def _lookup(raw: dict, ref: str) -> Any:
    node: Any = raw
    for part in normalize_id(ref).split("::"):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise KeyError(ref)
    return node


# --------------------------------------------------------------------------------------------------------------
# Literal evaluation of `$` expressions (no eval): literals, refs to literals, arithmetic and logic.

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMPOPS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
           ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
           ast.NotIn: lambda a, b: a not in b, ast.Is: operator.is_, ast.IsNot: operator.is_not}


def _is_literal(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return not (isinstance(value, str) and value[:1] in ("$", "@", "%"))
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and k not in SPECIAL_KEYS and _is_literal(v) for k, v in value.items())
    return False


def _eval_literal(node: ast.AST, refs: dict[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        if node.id in refs:
            return refs[node.id]
        raise _NotLiteral(f"name '{node.id}'")
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_eval_literal(e, refs) for e in node.elts]
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise _NotLiteral("** in a dict")
        return {_eval_literal(k, refs): _eval_literal(v, refs) for k, v in zip(node.keys, node.values)
                if k is not None}
    if isinstance(node, ast.UnaryOp):
        operand = _eval_literal(node.operand, refs)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, (ast.USub, ast.UAdd)) and isinstance(operand, (int, float)):
            return -operand if isinstance(node.op, ast.USub) else +operand
        raise _NotLiteral("unary operator")
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left, right = _eval_literal(node.left, refs), _eval_literal(node.right, refs)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right))
        joins = isinstance(node.op, ast.Add) and type(left) is type(right) and isinstance(left, (str, list))
        if not (numbers or joins):
            raise _NotLiteral("arithmetic on non-numbers")
        result = _BINOPS[type(node.op)](left, right)
        if isinstance(result, (str, list)) and len(result) > _MAX_LITERAL_LEN:
            raise _NotLiteral("literal too long")
        return result
    if isinstance(node, ast.BoolOp):
        values = [_eval_literal(v, refs) for v in node.values]
        if isinstance(node.op, ast.And):
            return all(values)
        return any(values)
    if isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        left = _eval_literal(node.left, refs)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval_literal(comparator, refs)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.IfExp):
        return _eval_literal(node.body if _eval_literal(node.test, refs) else node.orelse, refs)
    raise _NotLiteral(type(node).__name__)


def _parse_expression(expr: str) -> tuple[ast.expr, dict[str, str]]:
    """Parse ``expr`` (without the ``$``) with each ``@ref`` replaced by a placeholder name."""
    names: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        name = f"__ref{len(names)}__"
        names[name] = match.group(1)
        return name

    source = _REF.sub(placeholder, expr.strip())
    return ast.parse(source, mode="eval").body, names


def evaluate_literal_expression(expr: str, resolve_ref) -> Any:
    """Evaluate a ``$`` expression made only of literals, operators and references (no calls, no names).

    ``resolve_ref(id)`` returns the literal value of a referenced item or raises. Raises ``ValueError`` when
    the expression is anything else.
    """
    try:
        node, names = _parse_expression(expr[1:] if expr.startswith("$") else expr)
        values = {placeholder: resolve_ref(ref) for placeholder, ref in names.items()}
        return _eval_literal(node, values)
    except (SyntaxError, _NotLiteral, KeyError, RecursionError) as exc:
        raise ValueError(f"not a literal expression ({exc})") from None


def literal_value(raw: dict, value: Any, _seen: frozenset = frozenset()) -> Any:
    """The literal a config value stands for: itself, a referenced literal, or a literal ``$`` expression.

    Used by the registry to read e.g. ``_disabled_`` flags and ``pixdim`` without MONAI. Raises ``ValueError``
    when the value is not literal.
    """
    if isinstance(value, str) and value.startswith("@"):
        ref = value[1:]
        if ref in _seen:
            raise ValueError(f"reference cycle at @{ref}")
        try:
            target = _lookup(raw, ref)
        except KeyError:
            raise ValueError(f"unknown reference @{ref}") from None
        return literal_value(raw, target, _seen | {ref})
    if isinstance(value, str) and value.startswith("$"):
        return evaluate_literal_expression(value, lambda ref: literal_value(raw, "@" + ref, _seen))
    if isinstance(value, list):
        return [literal_value(raw, v, _seen) for v in value]
    if _is_literal(value):
        return value
    raise ValueError(f"not a literal: {_short(value)}")


# --------------------------------------------------------------------------------------------------------------
# Target checks.

_LOCATOR = None


def _locator():
    """MONAI's ComponentLocator over the allow-listed packages (imported here so their names are found)."""
    global _LOCATOR
    if _LOCATOR is None:
        from monai.bundle.config_item import ComponentLocator

        for module in ("monai.networks.nets", "monai.networks.blocks", "monai.networks.layers", "monai.transforms",
                       "monai.inferers", "monai.apps.detection.networks.retinanet_network",
                       "monai.apps.detection.networks.retinanet_detector", "monai.apps.detection.transforms.dictionary",
                       "monai.apps.detection.transforms.array", "monai.apps.detection.utils.anchor_utils"):
            importlib.import_module(module)
        _LOCATOR = ComponentLocator()
    return _LOCATOR


def _under(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _locate(qualified: str) -> Any:
    parts = qualified.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr, None)
            if obj is None:
                return None
        return obj
    return None


@dataclass(frozen=True)
class TargetCheck:
    """Outcome of checking one ``_target_``: the fully qualified name, or the reason it is refused."""

    qualified: str | None
    problem: str | None = None
    file_io: bool = False


def check_target(target: Any) -> TargetCheck:
    """Check a ``_target_`` (or the function of a ``$`` call) against the allow-list; nothing is run."""
    if not isinstance(target, str) or not target:
        return TargetCheck(None, "a target must be a class or function name")
    if target.startswith("$") or target.startswith("@"):
        return TargetCheck(None, "a computed target (expression or reference) cannot be checked")
    if target in SUBSTITUTES:
        return TargetCheck(SUBSTITUTES[target])
    if target == "scripts" or target.startswith("scripts."):
        return TargetCheck(None, "bundle script code (scripts.*) runs only when the bundle is trusted")
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", target):
        return TargetCheck(None, "not a dotted Python name")
    qualified = target
    if "." not in target:
        module = _locator().get_component_module_name(target)
        if module is None:
            return TargetCheck(None, "bare name not found among MONAI's components "
                                     "(Python would resolve it as a builtin)")
        if isinstance(module, list):
            module = module[0]  # MONAI takes the first one too
        qualified = f"{module}.{target}"
    if qualified in SUBSTITUTES:
        return TargetCheck(SUBSTITUTES[qualified])
    if not _under(qualified, ALLOWED_MODULES):
        return TargetCheck(None, f"target outside the allow-list ({', '.join(ALLOWED_MODULES)})")
    if _under(qualified, DENIED_TARGETS):
        return TargetCheck(None, "target reads or writes files")
    obj = _locate(qualified)
    if obj is None:
        return TargetCheck(None, f"'{qualified}' does not exist in this MONAI/torch version")
    if not (inspect.isclass(obj) or inspect.isfunction(obj)):
        return TargetCheck(None, "target is not a class or function")
    defined_in = getattr(obj, "__module__", "") or ""
    if not _under(defined_in, ALLOWED_MODULES):
        return TargetCheck(None, f"resolves to {defined_in}.{getattr(obj, '__name__', '?')}, outside the allow-list")
    if _under(defined_in, DENIED_TARGETS) or _under(f"{defined_in}.{obj.__name__}", DENIED_TARGETS):
        return TargetCheck(None, "target reads or writes files")
    return TargetCheck(qualified, file_io=_under(defined_in, FILE_IO_MODULES) or _under(qualified, FILE_IO_MODULES))


def _bind_call(qualified: str, args: list, kwargs: dict) -> dict:
    """Map positional arguments of a call to parameter names (so it can become a ``_target_`` component)."""
    obj = _locate(qualified)
    signature = inspect.signature(obj)
    bound = signature.bind_partial(*args, **kwargs)
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        elif kind is inspect.Parameter.VAR_POSITIONAL:
            raise TypeError("cannot pass extra positional arguments by keyword")
        else:
            out[name] = value
    return out


# --------------------------------------------------------------------------------------------------------------
# The walk.

class _Preparer:
    def __init__(self, raw: dict, trusted: bool, inject: dict):
        self.raw = raw
        self.trusted = trusted
        self.inject = inject
        self.refusals: list[Refusal] = []
        self.dropped: list[str] = []
        self.pending: list[str] = []
        self.done: dict[str, Any] = {}
        self.literal_stack: set[str] = set()

    # -- helpers -----------------------------------------------------------------------------------------------
    def refuse(self, path: str, value: Any, reason: str) -> None:
        self.refusals.append(Refusal(path, _short(value), reason))

    def need(self, ref: str, path: str) -> str:
        ref = normalize_id(ref)
        if ref.startswith("::"):
            self.refuse(path, "@" + ref, "relative references are not supported in an untrusted bundle")
            return ref
        key = top_key(ref)
        if key not in self.raw and key not in self.inject:
            self.refuse(path, "@" + ref, f"reference to a missing item '{key}'")
        elif key not in self.done and key not in self.pending:
            self.pending.append(key)
        return ref

    def literal_of_ref(self, ref: str, path: str) -> Any:
        """The literal value of a referenced item (sanitized on the way), for flags and arguments."""
        ref = normalize_id(ref)
        if ref in self.inject:
            return self.inject[ref]
        if ref in self.literal_stack:
            raise _NotLiteral(f"reference cycle at @{ref}")
        self.literal_stack.add(ref)
        try:
            try:
                value = _lookup(self.raw, ref)
            except KeyError:
                raise _NotLiteral(f"unknown reference @{ref}") from None
            value = self.literal(value, f"{ref}")
        finally:
            self.literal_stack.discard(ref)
        return value

    def literal(self, value: Any, path: str) -> Any:
        if isinstance(value, str) and value.startswith("@"):
            return self.literal_of_ref(value[1:], path)
        if isinstance(value, str) and value.startswith("$"):
            node, names = self._parse(value, path)
            refs = {placeholder: self.literal_of_ref(ref, path) for placeholder, ref in names.items()}
            return _eval_literal(node, refs)
        if isinstance(value, str) and value.startswith("%"):
            return self.literal(self.macro(value, path), path)
        if isinstance(value, list):
            return [self.literal(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            if "_target_" in value:
                raise _NotLiteral("a component")
            return {k: self.literal(v, f"{path}.{k}") for k, v in value.items()}
        if _is_literal(value):
            return value
        raise _NotLiteral(_short(value))

    def _parse(self, value: str, path: str):
        body = value[1:]
        stripped = body.strip()
        if stripped.startswith("import ") or stripped.startswith("from "):
            raise _NotLiteral("an import statement")
        try:
            return _parse_expression(body)
        except SyntaxError:
            raise _NotLiteral("not a Python expression") from None

    def macro(self, value: str, path: str) -> Any:
        spec = value[1:]
        source, sep, ref = spec.replace("#", "::").partition("::")
        if source:
            raise _NotLiteral(f"a macro into another file ({source})")
        try:
            return copy.deepcopy(_lookup(self.raw, ref))
        except KeyError:
            raise _NotLiteral(f"a macro to a missing item '{ref}'") from None

    # -- rewriting ---------------------------------------------------------------------------------------------
    def sanitize(self, value: Any, path: str, in_list: bool = False) -> Any:
        if isinstance(value, dict):
            if "_target_" in value:
                return self.component(value, path, in_list)
            return {k: self.sanitize(v, f"{path}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            out = [self.sanitize(v, f"{path}[{i}]", in_list=True) for i, v in enumerate(value)]
            return [v for v in out if v is not DROP]
        if isinstance(value, str):
            if value.startswith("@"):
                return "@" + self.need(value[1:], path)
            if value.startswith("%"):
                try:
                    return self.sanitize(self.macro(value, path), path, in_list)
                except _NotLiteral as exc:
                    self.refuse(path, value, f"refused: {exc}")
                    return None
            if value.startswith("$"):
                return self.expression(value, path)
            return value
        if _is_literal(value):
            return value
        self.refuse(path, value, "unsupported value type")
        return None

    def component(self, value: dict, path: str, in_list: bool) -> Any:
        disabled = value.get("_disabled_", False)
        try:
            disabled = self.literal(disabled, f"{path}._disabled_")
        except _NotLiteral as exc:
            self.refuse(f"{path}._disabled_", value.get("_disabled_"), f"cannot evaluate the flag safely ({exc})")
            disabled = False
        if isinstance(disabled, str):
            disabled = disabled.lower().strip() == "true"
        target = value.get("_target_")
        if disabled:
            self.dropped.append(f"{path} ({target}: disabled)")
            return DROP if in_list else None
        check = check_target(target)
        qualified = check.qualified
        if check.problem or qualified is None:
            self.refuse(f"{path}._target_", target, check.problem or "not an allowed target")
            return DROP if in_list else None
        if check.file_io:
            if in_list:
                self.dropped.append(f"{path} ({target}: file reader/writer; data is passed in memory)")
                return DROP
            self.refuse(f"{path}._target_", target, "file readers/writers are only dropped from transform lists")
            return None
        mode = value.get("_mode_", "default")
        if mode not in ALLOWED_MODES:
            self.refuse(f"{path}._mode_", mode, f"only {sorted(ALLOWED_MODES)} modes are allowed")
        out: dict[str, Any] = {"_target_": qualified}
        if "_mode_" in value:
            out["_mode_"] = mode
        for key, arg in value.items():
            if key in ("_target_", "_disabled_", "_desc_", "_mode_"):
                continue
            if "pretrained" in key.lower() and not qualified.startswith("inference."):
                try:
                    flag = self.literal(arg, f"{path}.{key}")
                except _NotLiteral:
                    flag = True
                if flag not in (False, None, 0, ""):
                    self.refuse(f"{path}.{key}", arg, "pretrained weights would be downloaded or read from a path")
                    continue
            out[key] = self.sanitize(arg, f"{path}.{key}")
        return out

    def expression(self, value: str, path: str) -> Any:
        try:
            node, names = self._parse(value, path)
        except _NotLiteral as exc:
            self.refuse(path, value, f"$ expression refused: {exc}")
            return None
        # 1. `@x.to(...)`: placing on a device is ours to do.
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "to"
                and isinstance(node.func.value, ast.Name) and node.func.value.id in names):
            return "@" + self.need(names[node.func.value.id], path)
        # 2. a call of an allow-listed function.
        if isinstance(node, ast.Call):
            try:
                return self.call(node, names, path)
            except _NotLiteral as exc:
                self.refuse(path, value, f"$ expression refused: {exc}")
                return None
        # 3. a literal expression.
        try:
            refs = {placeholder: self.literal_of_ref(ref, path) for placeholder, ref in names.items()}
            return _eval_literal(node, refs)
        except _NotLiteral as exc:
            self.refuse(path, value, f"$ expression refused: only literals, @references, operators and calls of "
                                     f"allow-listed functions are evaluated for an untrusted bundle ({exc})")
            return None

    def dotted(self, node: ast.AST) -> str | None:
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and not node.id.startswith("__ref"):
            parts.append(node.id)
            return ".".join(reversed(parts))
        return None

    def argument(self, node: ast.AST, names: dict[str, str], path: str) -> Any:
        if isinstance(node, ast.Name) and node.id in names:
            return "@" + self.need(names[node.id], path)
        if isinstance(node, ast.Call):
            return self.call(node, names, path)
        refs = {placeholder: self.literal_of_ref(ref, path) for placeholder, ref in names.items()
                if any(isinstance(n, ast.Name) and n.id == placeholder for n in ast.walk(node))}
        return _eval_literal(node, refs)

    def call(self, node: ast.Call, names: dict[str, str], path: str) -> dict:
        name = self.dotted(node.func)
        if name is None:
            raise _NotLiteral("only calls of plain dotted function names are allowed")
        check = check_target(name)
        qualified = check.qualified
        if check.problem or qualified is None:
            raise _NotLiteral(f"{name}: {check.problem or 'not an allowed target'}")
        if check.file_io:
            raise _NotLiteral(f"{name}: file readers/writers are not built")
        if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
            raise _NotLiteral("* and ** arguments are not allowed")
        args = [self.argument(a, names, path) for a in node.args]
        kwargs = {k.arg: self.argument(k.value, names, path) for k in node.keywords}
        try:
            bound = _bind_call(qualified, args, kwargs)
        except TypeError as exc:
            raise _NotLiteral(f"arguments do not match {name}: {exc}") from None
        for key, arg in bound.items():
            if "pretrained" in key.lower() and not qualified.startswith("inference.") and arg:
                raise _NotLiteral(f"{key}={arg!r}: pretrained weights would be downloaded or read from a path")
        return {"_target_": qualified, **bound}

    def method_calls(self, key: str, value: Any, owner: str) -> list[tuple[str, str, dict]]:
        """``detector_ops``-style list of ``$@owner.method(...)`` calls, checked and bound to kwargs."""
        calls = []
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            path = f"{key}[{i}]"
            if not (isinstance(item, str) and item.startswith("$")):
                self.refuse(path, item, "expected a `$@detector.method(...)` call")
                continue
            try:
                node, names = self._parse(item, path)
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and names.get(node.func.value.id) == owner):
                    raise _NotLiteral(f"only calls of @{owner}'s methods are allowed here")
                method = node.func.attr
                if method not in DETECTOR_METHODS:
                    raise _NotLiteral(f"method '{method}' is not one of {sorted(DETECTOR_METHODS)}")
                if any(isinstance(a, ast.Starred) for a in node.args) or any(k.arg is None for k in node.keywords):
                    raise _NotLiteral("* and ** arguments are not allowed")
                refs = {placeholder: self.literal_of_ref(ref, path) for placeholder, ref in names.items()
                        if placeholder != node.func.value.id}
                args = [_eval_literal(a, refs) for a in node.args]
                kwargs = {k.arg: _eval_literal(k.value, refs) for k in node.keywords if k.arg is not None}
                from monai.apps.detection.networks.retinanet_detector import RetinaNetDetector

                signature = inspect.signature(getattr(RetinaNetDetector, method))
                bound = dict(signature.bind_partial(None, *args, **kwargs).arguments)
                bound.pop(next(iter(signature.parameters)), None)  # self
                calls.append((owner, method, bound))
            except (_NotLiteral, TypeError) as exc:
                self.refuse(path, item, f"refused: {exc}")
        return calls

    # -- driver ------------------------------------------------------------------------------------------------
    def run(self, roots: Sequence[str], optional: Sequence[str], method_roots: dict[str, str]) -> PreparedConfig:
        config: dict[str, Any] = {}
        calls: list[tuple[str, str, dict]] = []
        for root in roots:
            if root not in self.raw:
                if root in optional:
                    continue
                self.refuse(root, "(missing)", "the bundle config has no such item")
                continue
            self.pending.append(root)
        for key, owner in method_roots.items():
            if key in self.raw:
                if self.trusted:
                    self.pending.append(key)
                else:
                    calls += self.method_calls(key, self.raw[key], owner)
        while self.pending:
            key = self.pending.pop(0)
            if key in self.done:
                continue
            if key in self.inject:
                self.done[key] = self.inject[key]
            elif self.trusted:
                self.done[key] = self._strip_io(self.raw[key], key)
                self._trusted_refs(self.raw[key])
            else:
                self.done[key] = self.sanitize(self.raw[key], key)
        config.update(self.done)
        if self.trusted and "imports" in self.raw:
            config["imports"] = self.raw["imports"]
        if self.refusals:
            raise BundleSafetyError(self.refusals)
        if not self.trusted:
            leftovers = list(_expressions_left(config))
            if leftovers:  # defence in depth: nothing executable may reach ConfigParser
                raise BundleSafetyError([Refusal(p, _short(v), "expression survived sanitising") for p, v in leftovers])
        present = [r for r in roots if r in config]
        return PreparedConfig(config, present, self.dropped, calls, self.trusted)

    def _strip_io(self, value: Any, path: str) -> Any:
        """Trusted bundles too: file readers/writers in transform lists are left out (data stays in memory), and
        MONAI's torchvision-bound feature extractor is replaced by ours."""
        if isinstance(value, dict):
            out_dict = {k: self._strip_io(v, f"{path}.{k}") for k, v in value.items()}
            if isinstance(out_dict.get("_target_"), str) and out_dict["_target_"] in SUBSTITUTES:
                out_dict["_target_"] = SUBSTITUTES[out_dict["_target_"]]
            return out_dict
        if isinstance(value, str) and value.startswith("$"):
            # Our torchvision-free equivalents apply to trusted expressions too.
            for original, ours in SUBSTITUTES.items():
                if "." in original:
                    value = value.replace(original, ours)
            return value
        if isinstance(value, list):
            out = []
            for i, item in enumerate(value):
                target = item.get("_target_") if isinstance(item, dict) else None
                if isinstance(target, str) and not target.startswith(("$", "@")):
                    check = check_target(target)
                    if check.file_io:
                        self.dropped.append(f"{path}[{i}] ({target}: file reader/writer; data is passed in memory)")
                        continue
                out.append(self._strip_io(item, f"{path}[{i}]"))
            return out
        return value

    def _trusted_refs(self, value: Any) -> None:
        if isinstance(value, dict):
            for v in value.values():
                self._trusted_refs(v)
        elif isinstance(value, list):
            for v in value:
                self._trusted_refs(v)
        elif isinstance(value, str) and value[:1] in ("@", "$", "%"):
            for ref in _REF.findall(value):
                key = top_key(ref)
                if key and (key in self.raw or key in self.inject) and key not in self.done \
                        and key not in self.pending:
                    self.pending.append(key)


def _expressions_left(value: Any, path: str = ""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _expressions_left(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _expressions_left(v, f"{path}[{i}]")
    elif isinstance(value, str) and value[:1] in ("$", "%"):
        yield path, value


def prepare_config(raw: dict, roots: Sequence[str], *, trusted: bool = False, inject: dict | None = None,
                   optional: Sequence[str] = (), method_roots: dict[str, str] | None = None,
                   source: str = "configs/inference.json") -> PreparedConfig:
    """Reduce ``raw`` to ``roots`` and what they reference, checked (untrusted) or as written (trusted).

    Parameters
    ----------
    raw
        The parsed bundle config (JSON/YAML content, never evaluated).
    roots
        Items to build, e.g. ``["network_def", "preprocessing", "inferer", "postprocessing"]``.
    trusted
        Skip the rewriting and allow-list (the user vouched for the bundle).
    inject
        Items we supply ourselves (``bundle_root``, ``device``): used instead of the config's values.
    optional
        Roots that may be missing.
    method_roots
        ``{"detector_ops": "detector"}``: lists of method calls on an item, checked against
        :data:`DETECTOR_METHODS` and returned as ``method_calls`` (untrusted) or kept for ConfigParser (trusted).

    Raises
    ------
    BundleSafetyError
        Listing every refused entry; nothing has been imported from the bundle or executed.
    """
    preparer = _Preparer(raw, trusted, dict(inject or {}))
    try:
        return preparer.run(list(roots), list(optional), dict(method_roots or {}))
    except BundleSafetyError as exc:
        exc.source = source
        raise BundleSafetyError(exc.refusals, source) from None
