"""The few trials whose validity implies every trial's: validating a study in time linear in its spec.

A study's trials are the product of its axes, variants and seeds. Validating every one of them, or
every combination of the discrete axes, costs time in the size of the space rather than of the spec:
four 22-value axes are 234,256 combinations (a 910-byte body took 22 s). But the checks of
:class:`~mixup_core.ExperimentConfig` look at little:

- each setting on its own: pydantic's field constraints, which are intervals for numbers (so the
  smallest and the largest value of an axis stand for every value between them), and whether a
  mixing layer is a mixing point of the model;
- across settings, ``ExperimentConfig._check_combination``: a hidden layer (``layer != "input"``) with
  ``pairing == "knn"`` or ``input_noise > 0``; ``alpha > 0`` with ``batch_size < 2``; ``pairing ==
  "knn"`` with ``knn_k`` >= the training-set size. Dataset, model and batch size are never varied.

So every value falls into a *class* (alpha: 0 or > 0; layer: input, a mixing point, or not one;
pairing: random or knn; ...). One probe trial per combination of the classes of the *coupled*
settings, with the extremes of every other setting spread over those probes, covers every trial;
finding the classes is one pass over the spec. KEEP IN STEP with ``_check_combination``: a new
cross-setting check needs its settings' classes here (tests/studies/test_space_check.py compares
this with validating every combination, on many random small spaces).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mixup_core.config import LAYER_PATTERN
from mixup_core.data.registry import dataset_info
from mixup_core.models.registry import mix_points
from studies.spec import SEED, VARIANT, Range

if TYPE_CHECKING:
    from studies.spec import StudySpec, Variant

Params = dict[str, Any]

#: Mixing settings that ``_check_combination`` relates to each other; ``knn_k`` is related too, but
#: only its largest value matters (a threshold), so it is no class of its own.
COUPLED = ("alpha", "layer", "pairing", "input_noise")
_NUMERIC = ("alpha", "weight_decay", "lr", "label_smoothing", "input_noise")
_VARIANT_NAMES = ("lam_per", "pairing", "scope", "target", "layer")
#: Bad layer names reported one by one; beyond these they share one class (the study is refused anyway).
_SHOWN_BAD_LAYERS = 5
_UNSET = "unset"


def _positive(value: Any) -> bool:
    return bool(value > 0)  # NaN is not > 0: it fails its own field check anyway


def extremes(values: Iterable[Any]) -> list[Any]:
    """The smallest and largest number (and a NaN, which orders with nothing), deduplicated, in one pass."""
    low = high = nan = None
    for value in values:
        if value != value:  # NaN
            nan = value if nan is None else nan
        elif low is None or value < low:
            low = value
        if value == value and (high is None or value > high):
            high = value
    return _distinct(v for v in (low, high, nan) if v is not None)


def _distinct(values: Iterable[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for value in values:
        key = (type(value), value) if value == value else "nan"
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


class LayerClasses:
    """The class of a mixing layer: ``input``, a mixing point of the model, or (one by one) not one."""

    def __init__(self, spec: StudySpec) -> None:
        self.spec = spec
        self._points: frozenset[str] | None = None
        self.bad: dict[str, int] = {}

    def points(self) -> frozenset[str]:
        """The model's mixing points, looked up once and only for a spec that mixes at a hidden layer."""
        if self._points is None:
            try:
                self._points = frozenset(mix_points(self.spec.model.name, _input_shape(self.spec)))
            except ValueError:
                self._points = frozenset()  # the model cannot take the data: every trial fails alike
        return self._points

    def __call__(self, layer: str) -> Hashable:
        if layer == "input":
            return "input"
        if LAYER_PATTERN.match(layer) and layer in self.points():
            return "hidden"
        if layer not in self.bad and len(self.bad) < _SHOWN_BAD_LAYERS:
            self.bad[layer] = len(self.bad)
        return ("bad", self.bad.get(layer, _SHOWN_BAD_LAYERS))


def _input_shape(spec: StudySpec) -> tuple[int, ...]:
    try:
        return dataset_info(spec.dataset).input_shape
    except ValueError:
        return ()  # mix_points refuses it: every trial fails on the dataset alike


def _first_per_class(values: Iterable[Any], classify: Callable[[Any], Hashable]) -> list[Any]:
    firsts: dict[Hashable, Any] = {}
    for value in values:
        firsts.setdefault(classify(value), value)
    return list(firsts.values())


def axis_representatives(name: str, axis: list[Any] | Range, layers: LayerClasses) -> list[Any]:
    """Values of one axis that stand for all of it: range ends, a list's extremes, one name per class."""
    if isinstance(axis, Range):
        return _distinct([axis.low, axis.high])
    if name in _NUMERIC:
        return extremes(axis)
    if name == "layer":
        return _first_per_class(axis, layers)
    return _distinct(axis)  # pairing, scope, target: at most two names each


def variant_representatives(spec: StudySpec, layers: LayerClasses) -> list[Variant]:
    """Variants that stand for all, in one pass: one per class signature of the coupled settings (the
    one with the largest knn_k), the first per name of each other setting, each number's extremes."""
    by_signature: dict[tuple[Hashable, ...], Variant] = {}
    chosen: dict[tuple[str, Hashable], Variant] = {}
    low: dict[str, tuple[Any, Variant]] = {}
    high: dict[str, tuple[Any, Variant]] = {}
    for variant in spec.search.variants or []:
        # Only what the variant sets: an unset setting is the base's, valid on its own (a variant never
        # sets an axis's setting); fields_set keeps this pass short for sparse variants.
        values = {f: getattr(variant, f) for f in variant.model_fields_set if f != "name"}
        values = {f: v for f, v in values.items() if v is not None}
        signature = tuple(_value_class(f, values[f], layers) if f in values else _UNSET for f in COUPLED)
        best = by_signature.get(signature)
        if best is None or values.get("knn_k", spec.mixup.knn_k) > (best.knn_k or spec.mixup.knn_k):
            by_signature[signature] = variant
        for field, value in values.items():
            if field in _VARIANT_NAMES:
                chosen.setdefault((field, layers(value) if field == "layer" else value), variant)
            elif value != value:  # NaN
                chosen.setdefault((field, "nan"), variant)
            else:
                if field not in low or value < low[field][0]:
                    low[field] = (value, variant)
                if field not in high or value > high[field][0]:
                    high[field] = (value, variant)
    extremes_of = [v for _, v in (*low.values(), *high.values())]
    picked = {id(v): v for v in (*by_signature.values(), *chosen.values(), *extremes_of)}  # each once
    return list(picked.values())


def _value_class(field: str, value: Any, layers: LayerClasses) -> Hashable:
    if field == "layer":
        return layers(value)
    if field in ("alpha", "input_noise"):
        return _positive(value)
    return value  # pairing


def probe_points(spec: StudySpec) -> list[Params]:
    """Trials whose validity implies every trial's, found in time linear in the spec.

    Every combination of the coupled settings' representatives (variants included) is one probe; the
    other axes' representatives and the seeds' extremes are spread over the probes so that each
    appears in at least one.
    """
    layers = LayerClasses(spec)
    axes = spec.search.space.axes()
    reps = {name: axis_representatives(name, axis, layers) for name, axis in axes.items()}
    coupled = {name: values for name, values in reps.items() if name in COUPLED}
    spread = {name: values for name, values in reps.items() if name not in COUPLED}
    if spec.search.seeds != [spec.training.seed]:
        spread[SEED] = extremes(spec.search.seeds)  # a trial's seed is one of these (search.param_space)
    if spec.search.variants:
        coupled = {VARIANT: [v.name for v in variant_representatives(spec, layers)], **coupled}
    combos = _product(coupled)
    width = max((len(values) for values in spread.values()), default=1)
    combos += [combos[0]] * (width - len(combos))
    return [
        {**combo, **{name: values[i % len(values)] for name, values in spread.items()}}
        for i, combo in enumerate(combos)
    ]


def _product(axes: Mapping[str, Sequence[Any]]) -> list[Params]:
    names = list(axes)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*axes.values())]
