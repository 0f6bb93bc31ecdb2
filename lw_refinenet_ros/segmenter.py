"""One way to segment an image: :class:`Segmenter`, the package's Python API.

A ``Segmenter`` owns everything between "a checkpoint" and "labels, statistics and parts of
one image": the model, its class map (names and colours), the inference engine (backend,
precision, device, warm-up) and the object finder (detection and tracking). The node,
``lw-refinenet segment``, ``eval`` and ``bench`` and the benchmarks all build one, so a file,
a class map or an option means the same thing everywhere; the options are the node
parameters of the same names (``model.weights``, ``backend``, ``max_side``,
``objects.min_score``, ...), validated by the same tables.

Typical use::

    from lw_refinenet_ros.segmenter import Segmenter

    segmenter = Segmenter.load()                      # the packaged conveyor model
    result = segmenter.segment(image_rgb)             # (H, W, 3) uint8
    result.labels, result.class_names, result.objects.objects

    segmenter = Segmenter.from_options({'model.weights': 'best.pt', 'backend': 'torch',
                                        'objects.min_score': 0.5})

Frames and objects: an image segmented without ``stamp`` is a scene of its own (its parts
get no track ids); frames segmented with a ``stamp`` (seconds) form one stream whose parts
are tracked across calls (ids, velocities) until :meth:`Segmenter.reset_stream`.

No ROS here; torch is imported only when a model is loaded. :meth:`Segmenter.load` knows a
file it has loaded before from its card in the runtime cache (:mod:`.engine.weights_card`) and
then loads the network only when something needs it: a restart whose remembered runtime model
is cached never imports torch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from lw_refinenet_ros.engine.config import ENGINE_PARAMETERS, EngineConfig
from lw_refinenet_ros.engine.result import SegmentationResult
from lw_refinenet_ros.errors import ConfigError
from lw_refinenet_ros.objects.options import OBJECT_PARAMETERS, ObjectsConfig
from lw_refinenet_ros.options import ParameterSpec
from lw_refinenet_ros.palette import ClassMap

if TYPE_CHECKING:
    from lw_refinenet_ros.engine.weights_card import WeightsCard
    from lw_refinenet_ros.model.checkpoint import CheckpointInfo
    from lw_refinenet_ros.objects.processor import ObjectProcessor

__all__ = ['MODEL_OPTIONS', 'SEGMENTER_OPTIONS', 'Segmenter', 'SegmentationResult']

#: The node's ``model.*`` parameters, the ones that choose the network and its classes.
MODEL_OPTIONS: tuple[str, ...] = ('model.weights', 'model.arch', 'model.num_classes',
                                  'model.classes_file')


def _option_specs() -> dict[str, ParameterSpec]:
    """Every option :meth:`Segmenter.from_options` takes, by name, from the tables that
    declare them (the node's model options, the engine's, the object finder's)."""
    from lw_refinenet_ros.config import PARAMETER_SPECS  # the node table declares model.*

    specs = {name: PARAMETER_SPECS[name] for name in MODEL_OPTIONS}
    specs.update((spec.name, spec) for spec in ENGINE_PARAMETERS)
    specs.update((spec.name, spec) for spec in OBJECT_PARAMETERS)
    return specs


#: Names of every option :meth:`Segmenter.from_options` accepts.
SEGMENTER_OPTIONS: tuple[str, ...] = (*MODEL_OPTIONS, *(s.name for s in ENGINE_PARAMETERS),
                                      *(s.name for s in OBJECT_PARAMETERS))


def resolve_class_map(info: CheckpointInfo | WeightsCard | None, num_classes: int,
                      classes_file: str | Path | None = None) -> ClassMap:
    """The class map a model runs with: the class file when one is given (it must list
    ``num_classes`` classes), else the names and colours the checkpoint stores (``info``: what
    the file said, or its card), else the defaults (VOC names for 21 classes, ``class_N``
    otherwise; VOC colours).

    Raises:
        ConfigError: The class file is unreadable or lists another number of classes.
    """
    if classes_file:
        from lw_refinenet_ros.classes import load_class_map

        return load_class_map(classes_file, num_classes)
    if info is not None:
        return ClassMap.from_checkpoint(info.class_names, info.colors, num_classes)
    return ClassMap.default(num_classes)


def _model_name(model: Any, info: CheckpointInfo | WeightsCard | None, engine: Any) -> str:
    """``mbv2:default.pt via openvino/bf16``; ``in-memory`` for a model without a file (a
    model opened from its file's card names the file from the card)."""
    from lw_refinenet_ros.engine.weights_card import DeferredModel, packaged_model_path

    if info is None and isinstance(model, DeferredModel):
        info = model.card
    arch = info.arch if info is not None else getattr(model, 'arch', 'model')
    source = ((info.source or str(packaged_model_path())) if info is not None
              else 'in-memory')
    text = f'{arch}:{Path(source).name}'
    if engine is not None:
        described = engine.describe()
        text += f' via {described["backend"]}/{described["precision"]}'
    return text


def _checked_options(values: Mapping[str, Any],
                     specs: Mapping[str, ParameterSpec]) -> dict[str, Any]:
    """``values`` validated by their specs; an unknown name is refused with the closest
    known one."""
    unknown = sorted(set(values) - set(specs))
    if unknown:
        import difflib

        hints = [f'{name} (did you mean {close[0]}?)' if close else name
                 for name in unknown for close in [difflib.get_close_matches(name, specs, n=1)]]
        raise ConfigError(f'Unknown segmenter option(s) {", ".join(hints)}; the options are '
                          f'the node parameters model.*, the engine options and objects.* '
                          f'(config/lw_refinenet.yaml).')
    return {name: specs[name].validate(value) for name, value in values.items()}


def _file_arguments(weights: str, arch: str, num_classes: int,
                    classes_file: str) -> dict[str, Any]:
    """The node's ``model.*`` values as :meth:`Segmenter.load` takes them: ``''``,
    ``'auto'`` and 0 mean "read it from the file"."""
    return {'weights': weights or None, 'arch': None if arch == 'auto' else arch,
            'num_classes': num_classes or None, 'classes_file': classes_file or None}


def _load_arguments(values: Mapping[str, Any],
                    engine_overrides: Mapping[str, Any]) -> dict[str, Any]:
    """:meth:`Segmenter.load`'s arguments from option values keyed by the node's parameter
    names (see :meth:`Segmenter.from_options`); options not given take the node's defaults."""
    specs = _option_specs()
    checked = _checked_options(values, specs)
    model = [checked.get(name, specs[name].default) for name in MODEL_OPTIONS]
    engine_values = {spec.name: checked[spec.name] for spec in ENGINE_PARAMETERS
                     if spec.name in checked}
    objects = ObjectsConfig.from_mapping(
        {name: value for name, value in checked.items() if name.startswith('objects.')})
    return {**_file_arguments(*model), 'objects': objects,
            'engine': EngineConfig.from_mapping({**engine_values, **engine_overrides})}


def _first_frame(images: Sequence[np.ndarray], color_orders: str | Sequence[str]
                 ) -> tuple[np.ndarray | None, str]:
    """The first image of a batch and its colour order: what a lazy segmenter warms up on."""
    if not images:
        return None, 'rgb'
    return images[0], color_orders if isinstance(color_orders, str) else color_orders[0]


def _named(finish: Callable[[], list[SegmentationResult]], class_names: tuple[str, ...]
           ) -> Callable[[], list[SegmentationResult]]:
    """``finish`` with the class names set on its results."""
    def named() -> list[SegmentationResult]:
        results = finish()
        for result in results:
            result.class_names = class_names
        return results

    return named


class Segmenter:
    """Model + class map + engine + object finder: ``segment(image) -> SegmentationResult``.

    Build one with :meth:`load` (a checkpoint or the packaged default), :meth:`from_options`
    (the node's option names), :meth:`from_config` or :meth:`from_model`; one thread only.

    Args:
        model: The LW-RefineNet (an ``nn.Module`` with ``num_classes``).
        class_map: Names and colours of its classes (K must match the model's).
        engine: Engine options (default: :class:`EngineConfig` defaults).
        objects: Object-finder options; None: no parts are looked for. A config with
            ``enabled`` false is the same as None.
        info: What the checkpoint said (for :attr:`name`); None for an in-memory model.
        warmup_image: RGB uint8 frame to warm up and choose the backend on; the engine then
            warms up at that frame's size.
        lazy: Build the engine on the first frame segmented (warm-up and backend choice
            then happen on that frame, at its size) instead of now.
        calibration: int8 calibration frames for ``precision: auto`` (an
            :class:`~lw_refinenet_ros.engine.quantize.Int8Calibration`, or a function of the
            network's (height, width) returning one); see the engine.

    Raises:
        ConfigError: A class map that does not fit the model, an invalid option.
        EngineError: The engine cannot be built (device, backend, agreement gate).
    """

    def __init__(self, model: Any, class_map: ClassMap, *, engine: EngineConfig | None = None,
                 objects: ObjectsConfig | None = None, info: CheckpointInfo | None = None,
                 warmup_image: np.ndarray | None = None, lazy: bool = False,
                 calibration: Any = None) -> None:
        if isinstance(getattr(model, 'num_classes', None), int):
            class_map.check_num_classes(model.num_classes, 'the class map')
        self.calibration = calibration  # int8 frames for precision auto: see InferenceEngine
        self._model = model  # the network, or a DeferredModel (engine/weights_card.py)
        self.class_map = class_map
        self._info = info
        self.engine_config = engine if engine is not None else EngineConfig()
        self.objects_config = objects if objects is not None and objects.enabled else None
        self._engine: Any = None
        self._processors: dict[str, ObjectProcessor] = {}  # 'still' and 'stream', when used
        if not lazy:
            self._build_engine(warmup_image)

    @classmethod
    def load(cls, weights: str | Path | None = None, *, arch: str | None = None,
             num_classes: int | None = None, classes_file: str | Path | None = None,
             engine: EngineConfig | None = None, objects: ObjectsConfig | None = None,
             warmup_image: np.ndarray | None = None, lazy: bool = False,
             calibration: Any = None, trained_scale: bool = False) -> Segmenter:
        """Load a checkpoint (None: the packaged conveyor model) and build the segmenter.

        Args:
            weights: Checkpoint path (any format the loader reads) or None.
            arch: If given, the file must hold this architecture.
            num_classes: If given, the file must have this many classes.
            classes_file: Class names/colours file (YAML or text); default: the checkpoint's.
            engine, objects, warmup_image, lazy, calibration: As for the constructor.
            trained_scale: With ``max_side`` 0, run the network at the size the checkpoint
                was trained at (the node's ``model.trained_scale``).

        Raises:
            CheckpointError: Missing, unreadable, or not ``arch`` / ``num_classes``.
            ConfigError: A bad class file or option.
        """
        from lw_refinenet_ros.engine.weights_card import open_weights

        config = engine if engine is not None else EngineConfig()
        model, info = open_weights(str(weights) if weights else None, arch=arch or None,
                                   num_classes=num_classes or None,
                                   cache_dir=config.resolved_cache_dir())
        class_map = resolve_class_map(info if info is not None else model.card,
                                      model.num_classes, classes_file)
        if trained_scale and config.max_side == 0:
            config = dataclasses.replace(config, **model.card.engine_defaults)
        return cls(model, class_map, engine=config, objects=objects, info=info,
                   warmup_image=warmup_image, lazy=lazy, calibration=calibration)

    @classmethod
    def from_options(cls, values: Mapping[str, Any], *,
                     warmup_image: np.ndarray | None = None, lazy: bool = False,
                     **engine_overrides: Any) -> Segmenter:
        """Build from option values keyed by the node's parameter names.

        ``model.*`` choose the file and classes (``model.arch`` ``'auto'`` and
        ``model.num_classes`` 0 read them from the file), the engine options
        (``backend``, ``max_side``, ...) configure inference and ``objects.*`` the object
        finder (on unless ``objects.enabled`` is false). Options not given take the same
        defaults as the node's. ``engine_overrides`` are code-level engine fields
        (``warmup_iters=0``, ``warmup_size=(h, w)``).

        Raises:
            ConfigError: An unknown option (named, with the closest known one) or an
                invalid value (named, with what is allowed).
        """
        return cls.load(**_load_arguments(values, engine_overrides), warmup_image=warmup_image,
                        lazy=lazy)

    @classmethod
    def from_config(cls, config: Any, **kwargs: Any) -> Segmenter:
        """Build from a :class:`~lw_refinenet_ros.config.NodeConfig` (the node's path): its
        ``model_*`` fields, ``engine`` and ``objects``. ``kwargs`` as for the constructor."""
        return cls.load(**_file_arguments(config.model_weights, config.model_arch,
                                          config.model_num_classes, config.model_classes_file),
                        engine=config.engine, objects=config.objects,
                        trained_scale=config.model_trained_scale, **kwargs)

    @classmethod
    def from_model(cls, model: Any, class_map: ClassMap | None = None,
                   **kwargs: Any) -> Segmenter:
        """Wrap a model already in memory (default classes: :meth:`ClassMap.default` of its
        ``num_classes``); ``kwargs`` as for the constructor."""
        return cls(model, class_map or ClassMap.default(int(model.num_classes)), **kwargs)

    def _build_engine(self, warmup_image: np.ndarray | None) -> None:
        from lw_refinenet_ros.engine import InferenceEngine

        config = self.engine_config
        if warmup_image is not None:
            config = dataclasses.replace(config, warmup_size=tuple(warmup_image.shape[:2]))
        self._engine = InferenceEngine(self._model, config, num_classes=self.num_classes,
                                       warmup_image=warmup_image,
                                       calibration=self.calibration)

    @property
    def model(self) -> Any:
        """The network (an ``nn.Module``); a segmenter opened from a file's card loads it
        now, the first time it is asked for (torch is imported then)."""
        from lw_refinenet_ros.engine.weights_card import loaded_model

        return loaded_model(self._model)

    @property
    def info(self) -> CheckpointInfo | None:
        """What the checkpoint file said (None for an in-memory model); read from the file
        the first time it is asked for when the segmenter was opened from the file's card."""
        from lw_refinenet_ros.engine.weights_card import DeferredModel

        if self._info is None and isinstance(self._model, DeferredModel):
            self._info = self._model.checkpoint_info()
        return self._info

    @property
    def engine(self) -> Any:
        """The :class:`~lw_refinenet_ros.engine.InferenceEngine` (None before a lazy one's)."""
        return self._engine

    @property
    def num_classes(self) -> int:
        """K, the number of classes."""
        return self.class_map.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, index = label value."""
        return self.class_map.names

    @property
    def name(self) -> str:
        """``arch:file via backend/precision``, for start-up logs and /diagnostics."""
        return _model_name(self._model, self._info, self._engine)

    def describe(self) -> dict[str, Any]:
        """The engine's settings (backend, precision, device, why), or {} before it exists."""
        return self._engine.describe() if self._engine is not None else {}

    # ------------------------------------------------------------------ segmenting

    def warm_up(self, image: np.ndarray | None = None, color_order: str = 'rgb') -> None:
        """Build the engine now (a ``lazy`` segmenter), warmed up on ``image`` at its size
        (None: the engine's own frame at ``warmup_size``); nothing when it exists already.
        Lets a caller time start-up apart from frames."""
        if self._engine is None:
            if image is not None and color_order == 'bgr':
                image = image[:, :, ::-1]
            self._build_engine(None if image is None else np.ascontiguousarray(image))

    def segment(self, image: np.ndarray, color_order: str = 'rgb', *,
                stamp: float | None = None, want_confidence: bool = True,
                want_stats: bool = True, want_objects: bool = True) -> SegmentationResult:
        """Segment one (H, W, 3) uint8 image.

        Args:
            image: The frame.
            color_order: ``'rgb'`` or ``'bgr'`` (OpenCV, ROS ``bgr8``).
            stamp: None: a still image (parts without track ids). Seconds: a frame of this
                segmenter's stream, tracked with the frames before it.
            want_confidence: Return the confidence map (always computed when parts are
                looked for: their scores need it).
            want_stats: Return per-class statistics.
            want_objects: Look for parts (only when the segmenter has an objects config).

        Returns:
            The engine's result with ``class_names`` and, when parts were looked for,
            ``objects`` (an :class:`~lw_refinenet_ros.objects.processor.ObjectFrame`).

        Raises:
            EngineError: A bad image or colour order, or inference failed.
        """
        find_objects = want_objects and self.objects_config is not None
        self.warm_up(image, color_order)
        result = self._engine(image, color_order,
                              want_confidence=want_confidence or find_objects,
                              want_stats=want_stats)
        result.class_names = self.class_names
        if find_objects:
            result.objects = self._processor(still=stamp is None).process(
                result.labels, 0.0 if stamp is None else stamp, result.confidence, image=image,
                boundary=result.boundary, network_size=result.network_size)
            if not want_confidence:
                result.confidence = None
        return result

    def segment_batch(self, images: Sequence[np.ndarray],
                      color_orders: str | Sequence[str] = 'rgb', **wants: bool
                      ) -> list[SegmentationResult]:
        """Segment several images in shared forward passes (several cameras; ``wants``:
        ``want_confidence``, ``want_stats``). No parts: give each camera an
        :meth:`object_stream`."""
        return self.begin_batch(images, color_orders, **wants)()

    def begin_batch(self, images: Sequence[np.ndarray],
                    color_orders: str | Sequence[str] = 'rgb', **wants: bool
                    ) -> Callable[[], list[SegmentationResult]]:
        """:meth:`segment_batch` in two halves (``InferenceEngine.begin_batch``)."""
        self.warm_up(*_first_frame(images, color_orders))
        return _named(self._engine.begin_batch(images, color_orders, **wants),
                      self.class_names)

    def object_stream(self, *, tracking: bool = True,
                      on_warning: Any = None) -> ObjectProcessor:
        """A new object finder with this segmenter's options and classes, for one stream
        (one camera); ``tracking`` false: every frame a scene of its own."""
        from lw_refinenet_ros.objects.processor import ObjectProcessor

        config = self.objects_config or ObjectsConfig.defaults()
        if not tracking:
            config = dataclasses.replace(config, tracking_enabled=False)
        return ObjectProcessor(config, self.class_names, on_warning)

    def reset_stream(self) -> None:
        """Start a new stream: forget the tracks of the frames segmented with a ``stamp``."""
        if 'stream' in self._processors:
            self._processors['stream'].tracker.reset()

    def _processor(self, *, still: bool) -> ObjectProcessor:
        key = 'still' if still else 'stream'
        if key not in self._processors:
            self._processors[key] = self.object_stream(tracking=not still)
        return self._processors[key]
