"""What a checkpoint file holds, remembered: a restart knows its weights without loading them.

Loading a checkpoint costs importing torch (about 2 s of CPU on a 2-core AVX2 machine,
docs/benchmarks.md "Restart"), reading and verifying the file, and hashing every tensor for
the weights' identity that the runtime cache and the remembered backend choice are keyed by.
A start whose remembered runtime is OpenVINO or ONNX Runtime, with its runtime model in the
cache, needs none of that: only the weights' identity, the architecture, the class count,
names and colours, and the engine defaults the checkpoint implies (its trained scale).

So the first start that loads a file writes those into a small card, one JSON file under
``<cache_dir>/weights/``, keyed by the file's resolved path, size, modification time, inode
and device, and by what decides how a file loads (this package's version, the model code's
hash, torch's version). A later start with the same file reads the card and gets a
:class:`DeferredModel`: it answers ``arch``, ``num_classes`` and ``weights_id`` at once and
loads the real network only when something uses it (a runtime model missing from the cache,
the torch backend, a selection that must time the reference, int8 calibration, a caller of
``Segmenter.model``). A file replaced, rewritten or touched has another stat and so misses;
an unreadable card is a miss; a card is written atomically (a temporary file renamed), and
failing to write one (a read-only or full disk) only costs the next start its speed.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
from pathlib import Path
import sys
import threading
from typing import Any, Mapping

from lw_refinenet_ros.atomic import write_json_atomically

_LOG = logging.getLogger(__name__)

#: Sub-folder of the cache folder holding the cards.
FOLDER = 'weights'
FORMAT_VERSION = 1
#: The packaged model's file inside the ``model`` package (``model/weights.py`` defines
#: ``DEFAULT_MODEL_PATH`` from the same place; test_weights_card.py checks that they agree).
_PACKAGED_MODEL = ('default', 'conveyor_mbv2.pt')


def packaged_model_path() -> Path:
    """The file ``load_model(None)`` reads, found without importing torch.

    Once ``lw_refinenet_ros.model.weights`` is imported its ``DEFAULT_MODEL_PATH`` is the
    answer (tests re-point it); before that, the file beside the ``model`` package, located
    through its import spec (which runs nothing of it).
    """
    weights = sys.modules.get('lw_refinenet_ros.model.weights')
    if weights is not None:
        return Path(weights.DEFAULT_MODEL_PATH)
    spec = importlib.util.find_spec('lw_refinenet_ros.model')
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*_PACKAGED_MODEL)
        if candidate.is_file():
            return candidate
    return Path(locations[0] if locations else '.').joinpath(*_PACKAGED_MODEL)


@dataclasses.dataclass(frozen=True)
class WeightsCard:
    """What a start needs to know about a checkpoint file before (or instead of) loading it.

    Attributes:
        path: The file (resolved).
        arch: Architecture (one of the model package's ``ARCHES``).
        num_classes: K.
        class_names: Names stored in the file, or None.
        colors: One (r, g, b) per class stored in the file, or None.
        source: What the loader reported as the source (``CheckpointInfo.source``).
        weights_id: The weights' hash (``engine.export.model_fingerprint`` of the loaded
            network), the runtime cache's and the remembered choice's key.
        engine_defaults: ``model.checkpoint.engine_defaults(metadata, max_side=None)``: the
            engine options the file implies when the user sets none (its trained scale).
        output_channels: Channels of the network's output when it differs from K (a model
            with a part-boundary channel), else None.
    """

    path: str
    arch: str
    num_classes: int
    class_names: tuple[str, ...] | None
    colors: tuple[tuple[int, int, int], ...] | None
    source: str
    weights_id: str
    engine_defaults: dict[str, Any] = dataclasses.field(default_factory=dict)
    output_channels: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WeightsCard:
        names = data.get('class_names')
        colors = data.get('colors')
        return cls(path=str(data['path']), arch=str(data['arch']),
                   num_classes=int(data['num_classes']),
                   class_names=tuple(str(n) for n in names) if names is not None else None,
                   colors=tuple(tuple(int(v) for v in c) for c in colors)
                   if colors is not None else None,  # type: ignore[misc]
                   source=str(data.get('source', '')), weights_id=str(data['weights_id']),
                   engine_defaults=dict(data.get('engine_defaults') or {}),
                   output_channels=data.get('output_channels'))


def _file_key(path: Path) -> dict[str, Any]:
    """The file's identity and what decides how it loads; raises OSError when it is gone."""
    from lw_refinenet_ros.engine.export import model_code_hash, package_version

    stat = path.stat()
    try:
        torch_version = importlib.metadata.version('torch')
    except importlib.metadata.PackageNotFoundError:
        torch_version = 'unknown'
    return {'path': str(path), 'size': stat.st_size, 'mtime_ns': stat.st_mtime_ns,
            'inode': stat.st_ino, 'device': stat.st_dev, 'package': package_version(),
            'model_code': model_code_hash(), 'torch': torch_version}


class WeightsCards:
    """The cards under ``<root>/weights``; see the module docstring.

    Args:
        root: The cache folder (None: nothing is remembered).
    """

    def __init__(self, root: Path | str | None) -> None:
        self.folder = Path(root).expanduser() / FOLDER if root is not None else None
        self._warned = False

    def _card_path(self, path: Path) -> Path | None:
        if self.folder is None:
            return None
        name = hashlib.sha256(str(path).encode('utf-8')).hexdigest()[:32]
        return self.folder / f'{name}.json'

    def lookup(self, path: Path | str) -> WeightsCard | None:
        """The card of ``path`` as it is now, or None (no card, another file behind the same
        name, another package/model code/torch, or an unreadable card)."""
        try:
            path = Path(path).resolve()
            card_path = self._card_path(path)
            if card_path is None or not card_path.is_file():
                return None
            stored = json.loads(card_path.read_text(encoding='utf-8'))
            if stored.get('format') != FORMAT_VERSION or stored.get('key') != \
                    json.loads(json.dumps(_file_key(path))):
                return None
            return WeightsCard.from_json(stored['card'])
        except (OSError, ValueError, KeyError, TypeError) as error:
            _LOG.debug('no usable weights card for %s (%s)', path, error)
            return None

    def save(self, path: Path | str, card: WeightsCard) -> Path | None:
        """Write ``card`` for ``path`` atomically; a failure is logged once (debug: it only
        costs the next start its speed) and leaves any previous card as it was."""
        try:
            path = Path(path).resolve()
            card_path = self._card_path(path)
            if card_path is None:
                return None
            record = {'format': FORMAT_VERSION, 'key': _file_key(path),
                      'card': dataclasses.asdict(card)}
            card_path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(card_path, record, durable=False)
            return card_path
        except (OSError, TypeError, ValueError) as error:
            if not self._warned:
                _LOG.debug('could not write the weights card of %s (%s); the next start '
                           'loads the file again.', path, error)
                self._warned = True
            return None


class DeferredModel:
    """A checkpoint's network, loaded on first use; see the module docstring.

    ``arch``, ``num_classes``, ``weights_id`` (and ``output_channels`` when the card knows
    it) are answered without loading. Any other attribute, a call or a ``deepcopy`` loads the
    network (once, thread-safely) and acts on it, so code written for an ``nn.Module`` works
    unchanged; code that needs the module itself calls :meth:`load` (or
    :func:`loaded_model`).

    Args:
        card: The file's card.
        model: The network when it is already loaded (a start that just wrote the card).
        info: Its ``CheckpointInfo``, when loaded.
    """

    def __init__(self, card: WeightsCard, *, model: Any = None, info: Any = None) -> None:
        self.card = card
        self.arch = card.arch
        self.num_classes = card.num_classes
        self.weights_id = card.weights_id
        if card.output_channels is not None:
            self.output_channels = card.output_channels
        self._model = model
        self._info = info
        self._lock = threading.Lock()

    @property
    def is_loaded(self) -> bool:
        """Whether the network is in memory (torch imported, the file read)."""
        return self._model is not None

    def load(self) -> Any:
        """The network (an ``nn.Module`` in eval mode), loading it the first time.

        Raises:
            CheckpointError: The file can no longer be read or no longer matches its card.
        """
        with self._lock:
            if self._model is None:
                from lw_refinenet_ros.engine.export import model_fingerprint
                from lw_refinenet_ros.model import load_model

                _LOG.info('loading the network from %s (needed now)', self.card.path)
                model, info = load_model(self.card.path, arch=self.card.arch,
                                         num_classes=self.card.num_classes)
                if model_fingerprint(model) != self.weights_id:
                    _LOG.warning('%s changed after this process read its card; the engine '
                                 'keeps running the weights it started with until a restart',
                                 self.card.path)
                self._model, self._info = model, info
        return self._model

    def checkpoint_info(self) -> Any:
        """The file's ``CheckpointInfo`` (loads the network if needed)."""
        self.load()
        return self._info

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not set above: those of the real network.
        if name.startswith('__') or name in ('card', '_model', '_info', '_lock'):
            raise AttributeError(name)
        return getattr(self.load(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.load()(*args, **kwargs)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return copy.deepcopy(self.load(), memo)


def loaded_model(model: Any) -> Any:
    """``model`` itself, or the network a :class:`DeferredModel` stands for (loaded now)."""
    return model.load() if isinstance(model, DeferredModel) else model


def weights_id_of(model: Any) -> str:
    """The weights' hash: a :class:`DeferredModel`'s from its card (nothing loaded), else
    ``model_fingerprint`` of the network."""
    if isinstance(model, DeferredModel):
        return model.weights_id
    from lw_refinenet_ros.engine.export import model_fingerprint

    return model_fingerprint(model)


def open_weights(weights: str | os.PathLike[str] | None, *, arch: str | None = None,
                 num_classes: int | None = None,
                 cache_dir: Path | str | None = None) -> tuple[DeferredModel, Any]:
    """The checkpoint ``weights`` (None: the packaged model) as a :class:`DeferredModel`,
    and its ``CheckpointInfo`` when it had to be loaded (None when its card answered).

    With a card for the file as it is now (and ``arch``/``num_classes`` matching it) nothing
    is loaded. Otherwise the file is loaded as ``load_model`` does (same checks, same
    errors) and its card written for the next start.

    Raises:
        CheckpointError, ConfigError: As ``model.load_model``.
    """
    path = packaged_model_path() if weights is None else Path(weights)
    cards = WeightsCards(cache_dir)
    card = cards.lookup(path) if path.is_file() else None
    if card is not None and arch in (None, card.arch) and num_classes in (None,
                                                                        card.num_classes):
        _LOG.debug('weights card hit for %s: %s, %d classes', path, card.arch,
                   card.num_classes)
        return DeferredModel(card), None
    from lw_refinenet_ros.engine.export import model_fingerprint
    from lw_refinenet_ros.model import load_model
    from lw_refinenet_ros.model.checkpoint import engine_defaults

    model, info = load_model(None if weights is None else str(weights), arch=arch,
                             num_classes=num_classes)
    output_channels = getattr(model, 'output_channels', None)
    card = WeightsCard(
        path=str(Path(path).resolve()), arch=info.arch, num_classes=info.num_classes,
        class_names=tuple(info.class_names) if info.class_names is not None else None,
        colors=tuple(tuple(int(v) for v in c) for c in info.colors)
        if info.colors is not None else None,
        source=info.source, weights_id=model_fingerprint(model),
        engine_defaults=dict(engine_defaults(info.metadata, max_side=None)),
        output_channels=output_channels if isinstance(output_channels, int)
        and output_channels != info.num_classes else None)
    cards.save(path, card)
    return DeferredModel(card, model=model, info=info), info
