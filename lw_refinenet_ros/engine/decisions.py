"""Remembered backend choices: a restarted node does not time every runtime again.

Choosing ``backend='auto'`` builds and times every runtime (seconds), and one noisy timing
round can flip the choice from one start to the next. So the outcome (backend, precision,
threads, the agreement figure and the timings it rests on) is stored in the user's cache
folder, keyed by everything that could change it:

* the CPU: model name and every feature flag (a new machine, or a VM that hides AVX-512);
* the software: this package's version and the installed torch, OpenVINO, ONNX Runtime and
  NNCF versions;
* the weights' hash and the network input size;
* the request: device, backend, precision, threads, batch, agreement gate, upsampling and
  the torch options.

A start whose key matches builds only the remembered runtime: no reference, no candidates,
no timing. A start whose key differs times again, and where the new timings are within
:data:`TIE_RATIO` of each other the previous choice is kept (so noise cannot flip it).

One JSON file per weights + size + request (so the previous choice is found when only the
CPU or a version changed), written atomically (a temporary file renamed over the old one):
a crash or a full disk never leaves half a decision, and an unreadable file is a miss.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import logging
import os
from pathlib import Path
import time
from typing import Any, Mapping

from lw_refinenet_ros.atomic import write_json_atomically

_LOG = logging.getLogger(__name__)

#: Sub-folder of the cache folder holding the decisions.
FOLDER = 'decisions'
FORMAT_VERSION = 1
#: Candidates whose median time is within this factor of the fastest count as tied; a tie
#: with the previous choice keeps it.
TIE_RATIO = 1.05
_RUNTIMES = ('torch', 'openvino', 'onnxruntime', 'onnxruntime-gpu', 'nncf')


@dataclasses.dataclass(frozen=True)
class Decision:
    """What a selection chose, and on what evidence.

    Attributes:
        backend: Backend name.
        precision: Precision name.
        threads: CPU threads it runs with (0 = the runtime's default).
        agreement: Label agreement with torch fp32 measured when it was chosen (None: the
            reference itself, or not compared).
        timings_ms: Median forward time per candidate (``'openvino/fp32'``).
        reason: The selection's reason line.
        created: Unix time of the decision.
    """

    backend: str
    precision: str
    threads: int = 0
    agreement: float | None = None
    timings_ms: dict[str, float] = dataclasses.field(default_factory=dict)
    reason: str = ''
    created: float = 0.0

    @property
    def label(self) -> str:
        return f'{self.backend}/{self.precision}'


@functools.lru_cache(maxsize=1)
def runtime_versions() -> dict[str, str]:
    """Installed versions of this package and every runtime that can change a choice."""
    from lw_refinenet_ros.engine.export import model_code_hash, package_version

    versions = {'lw_refinenet_ros': package_version(), 'model_code': model_code_hash()}
    for name in _RUNTIMES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def cpu_identity() -> dict[str, str]:
    """CPU model name and a hash of all its feature flags (not only the ISA ones shown)."""
    from lw_refinenet_ros.engine.backends import cpu_description, cpu_flags

    flags = ' '.join(sorted(cpu_flags()))
    return {'cpu': cpu_description(),
            'cpu_flags': hashlib.sha256(flags.encode('utf-8')).hexdigest()[:16],
            'cores': str(os.cpu_count())}


def _digest(parts: Mapping[str, Any]) -> str:
    text = json.dumps(dict(parts), sort_keys=True, separators=(',', ':'), default=str)
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:32]


class DecisionStore:
    """Decisions under ``<cache_dir>/decisions``; see the module docstring.

    Args:
        root: The cache folder (None: nothing is remembered).
    """

    def __init__(self, root: Path | str | None) -> None:
        self.folder = Path(root).expanduser() / FOLDER if root is not None else None
        self._warned = False

    @staticmethod
    def machine_key() -> dict[str, Any]:
        """The parts of the key that describe this machine and its software."""
        return {'machine': cpu_identity(), 'versions': runtime_versions()}

    def _path(self, subject: Mapping[str, Any]) -> Path | None:
        if self.folder is None:
            return None
        return self.folder / f'{_digest(subject)}.json'

    def load(self, subject: Mapping[str, Any],
             machine: Mapping[str, Any] | None = None) -> tuple[Decision | None,
                                                                 Decision | None]:
        """(the decision for exactly this key, the previous decision for this subject).

        ``subject`` is the weights, size and request; ``machine`` defaults to
        :meth:`machine_key`. The first is None on a miss; the second is the stored decision
        whatever its machine key (for the tie rule), None if there is none.
        """
        path = self._path(subject)
        if path is None or not path.is_file():
            return None, None
        machine = dict(machine if machine is not None else self.machine_key())
        try:
            stored = json.loads(path.read_text(encoding='utf-8'))
            decision = Decision(**stored['decision'])
            key = stored['key']
        except (OSError, ValueError, KeyError, TypeError) as error:
            _LOG.debug('remembered backend choice %s is unreadable (%s); choosing again',
                       path, error)
            return None, None
        if stored.get('format') != FORMAT_VERSION:
            return None, None
        expected = json.loads(json.dumps({'subject': dict(subject), 'machine': machine},
                                         sort_keys=True, default=str))
        if key == expected:
            return decision, decision
        changed = sorted(name for name in ('subject', 'machine')
                         if key.get(name) != expected[name])
        details = []
        if 'machine' in changed:
            old, new = key.get('machine', {}), expected['machine']
            details = [name for name in sorted(set(old) | set(new))
                       if old.get(name) != new.get(name)]
            if 'versions' in details:
                details.remove('versions')
                details += [f'{n} version' for n in sorted(set(old.get('versions', {}))
                                                          | set(new['versions']))
                            if old.get('versions', {}).get(n) != new['versions'].get(n)]
        _LOG.info('the remembered backend choice (%s) was made %s; choosing again',
                  decision.label, 'with other ' + ', '.join(details) if details
                  else 'for another request')
        return None, decision

    def save(self, subject: Mapping[str, Any], decision: Decision,
             machine: Mapping[str, Any] | None = None) -> Path | None:
        """Store ``decision`` atomically; a failure (full disk, read-only folder) is logged
        once and leaves the previous file as it was."""
        path = self._path(subject)
        if path is None:
            return None
        machine = dict(machine if machine is not None else self.machine_key())
        record = {'format': FORMAT_VERSION,
                  'key': json.loads(json.dumps({'subject': dict(subject), 'machine': machine},
                                               sort_keys=True, default=str)),
                  'decision': dataclasses.asdict(
                      dataclasses.replace(decision, created=decision.created or time.time()))}
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomically(path, record)
        except OSError as error:
            if not self._warned:
                _LOG.warning('could not remember the backend choice in %s (%s); the next '
                             'start will time the runtimes again.', path.parent, error)
                self._warned = True
            return None
        return path


def keep_previous(medians: Mapping[str, float], best: str, previous: str | None,
                  ratio: float = TIE_RATIO) -> str:
    """``previous`` when it is among ``medians`` and within ``ratio`` of ``best``'s time,
    else ``best``: timing noise between near-equal runtimes does not flip the choice."""
    if previous is None or previous == best or previous not in medians or best not in medians:
        return best
    return previous if medians[previous] <= ratio * medians[best] else best
