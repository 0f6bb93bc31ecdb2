"""The rehearsal of benchmarks/device_check.sh on a machine shaped like the GPU machine.

The GPU machine (issue 23) has the image's python3 with torch, numpy, OpenCV, onnx and a
CPU-only onnxruntime, and nothing else: no OpenVINO, no ROS, no project ``.venv``, no package
registry. GPU time there is scarce, so the script must work the first time. This test runs the
same script, the same way (``bash benchmarks/device_check.sh`` from the root of a copy of the
repository's files without ``.venv``; ``python3`` found on PATH), with ``DEVICE=cpu`` and tiny
sizes, in such an environment, and checks that it completes, writes every file, and marks
every missing part "not run" with its reason.

The environment: a fresh ``python -m venv --without-pip`` (so nothing can be installed into
it) that sees exactly the distributions ``pip install torch numpy opencv-python-headless onnx
onnxruntime`` brings (their requirement closure) and nothing else, taken from the project's
venv through a folder of links named by one ``.pth`` file. Installing them instead took 106 s
here (2 cores, other jobs running: torch's wheel alone is 700 MB unpacked), too slow for every
CI run; the links give the same import surface in a second. The versions are the project's
(torch CPU 2.13, Python 3.11), not the GPU machine's (torch 2.11+cu130, Python 3.12).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from pathlib import Path
import shutil
import subprocess
import sys
import sysconfig

from packaging.requirements import Requirement
import pytest

ROOT = Path(__file__).resolve().parents[2]
#: What the GPU machine's image has besides the standard library.
GPU_MACHINE_PACKAGES = ('torch', 'numpy', 'opencv-python-headless', 'onnx', 'onnxruntime')
#: Must not be importable in the rehearsal (the GPU machine has none of them).
ABSENT = ('yaml', 'PIL', 'matplotlib', 'mcap', 'rclpy', 'openvino', 'nncf', 'tqdm', 'pytest')

pytestmark = pytest.mark.slow


def _closure(names: tuple[str, ...]) -> list[importlib.metadata.Distribution]:
    """The installed distributions ``names`` need, with their requirements (markers
    evaluated, no extras), as pip would have installed them."""
    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = list(names)
    while todo:
        name = todo.pop()
        key = name.lower().replace('_', '-')
        if key in seen:
            continue
        dist = importlib.metadata.distribution(name)
        seen[key] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({'extra': ''}):
                todo.append(requirement.name)
    return list(seen.values())


def _top_level_entries(dist: importlib.metadata.Distribution) -> set[str]:
    """The site-packages entries (packages, modules, .libs folders, the .dist-info) of one
    distribution."""
    entries = set()
    for file in dist.files or []:
        first = file.parts[0]
        if first in ('..', '__pycache__') or first.endswith('.pth') or '/' in first:
            continue
        entries.add(first)
    return entries


def _gpu_shaped_python(tmp_path: Path) -> Path:
    """A venv that imports exactly the GPU machine's packages; returns its bin folder."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True,
                   timeout=120)
    site = Path(sysconfig.get_paths()['purelib'])
    links = tmp_path / 'gpu_machine_site'
    links.mkdir()
    for dist in _closure(GPU_MACHINE_PACKAGES):
        for entry in _top_level_entries(dist):
            if (site / entry).exists() and not (links / entry).exists():
                (links / entry).symlink_to(site / entry)
    (found,) = venv.glob('lib/python3*/site-packages')
    (found / 'gpu_machine_packages.pth').write_text(f'{links}\n')
    return venv / 'bin'


def _repository_copy(tmp_path: Path) -> Path:
    """The repository's files as the GPU machine gets them: tracked and untracked-not-ignored
    files, no .venv, no build output."""
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard',
                             '-z'], cwd=ROOT, check=True, capture_output=True,
                            timeout=60).stdout.decode().split('\0')
    copy = tmp_path / 'repo'
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    assert not (copy / '.venv').exists()
    return copy


@pytest.fixture(scope='module')
def rehearsal(tmp_path_factory) -> dict:
    tmp_path = tmp_path_factory.mktemp('device_check')
    bin_dir = _gpu_shaped_python(tmp_path)
    repo = _repository_copy(tmp_path)
    env = {'PATH': f'{bin_dir}:/usr/bin:/bin', 'HOME': str(tmp_path),
           'XDG_CACHE_HOME': str(tmp_path / 'cache'), 'LANG': 'C.UTF-8'}

    def run(out: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(['bash', 'benchmarks/device_check.sh'], cwd=repo,
                              env={**env, 'OUT': str(tmp_path / out), **extra},
                              capture_output=True, text=True, timeout=300)

    return {'bin': bin_dir, 'repo': repo, 'env': env, 'tmp': tmp_path,
            'cpu': run('out_cpu', DEVICE='cpu', SIZE='32x48', ITERS='3', WARMUP='1'),
            'cuda': run('out_cuda')}


def test_the_environment_is_shaped_like_the_gpu_machine(rehearsal) -> None:
    script = ('import importlib.util, sys; print(sys.prefix); '
              f'print([m for m in {ABSENT!r} if importlib.util.find_spec(m)]); '
              'import torch, numpy, cv2, onnx, onnxruntime; print(torch.__version__)')
    shown = subprocess.run(['python3', '-c', script], env=rehearsal['env'], check=True,
                           capture_output=True, text=True, timeout=120).stdout.splitlines()
    assert shown[0] == str(rehearsal['bin'].parent)  # python3 on PATH is the rehearsal's
    assert shown[1] == '[]'
    assert not (rehearsal['bin'] / 'pip').exists()  # nothing can be installed


def test_the_cpu_rehearsal_completes_and_writes_every_file(rehearsal) -> None:
    completed = rehearsal['cpu']
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    out = rehearsal['tmp'] / 'out_cpu'
    for name in ('probe.json', 'gpu_matrix.json', 'gpu_matrix.md', 'device_check.json',
                 'device_check.md', 'gpu_matrix.log'):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    probe = json.loads((out / 'probe.json').read_text())
    assert probe['status'] == 'ok'
    assert probe['executable'].startswith(str(rehearsal['bin'].parent))  # not the .venv
    matrix = json.loads((out / 'gpu_matrix.json').read_text())
    assert matrix['finished'] is True
    rows = {row['mode']: row for row in matrix['rows']}
    reference = rows['torch fp32 (reference: eager, TF32 off)']
    assert reference['status'] == 'ok', reference
    assert reference['labels_equal_to_cpu_fp32_pct'] == 100.0
    assert reference['describe']['cuda_graphs'] is False
    assert reference['describe']['compile'] is False
    ort = rows['onnxruntime fp32 on the CPU']
    assert ort['status'] == 'ok', ort
    assert ort['describe']['provider'] == 'CPUExecutionProvider'
    node = rows['node pipeline: default options (auto), labels + confidence + stats']
    assert node['status'] == 'ok', node
    assert node['outputs'] == 'labels + confidence + stats'
    assert 'openvino' in node['describe']['reason']  # auto saw it missing, and said so


def test_the_cpu_rehearsal_marks_every_missing_part_not_run_with_its_reason(rehearsal) -> None:
    out = rehearsal['tmp'] / 'out_cpu'
    rows = {row['mode']: row for row in
            json.loads((out / 'gpu_matrix.json').read_text())['rows']}
    for mode in ('torch fp16', 'torch bf16', 'torch fp16 + CUDA graphs',
                 'torch fp16 + compile (inductor, cold)'):
        assert rows[mode] == {**rows[mode], 'status': 'not run',
                              'reason': 'needs CUDA; this is a --device cpu run'}
    for mode in ('onnxruntime fp32 (CUDA or TensorRT provider)',
                 'onnxruntime fp16 (TensorRT provider)'):
        assert rows[mode]['status'] == 'not run'
        assert 'CPU-only onnxruntime' in rows[mode]['reason']
    report = (out / 'device_check.md').read_text()
    assert '- openvino: not run: OpenVINO is not installed' in report
    assert '- ros_node: not run: rclpy (ROS 2) is not installed for this Python' in report
    assert 'onnxruntime_cuda: not run: the CPU-only onnxruntime' in report
    assert '## Node end to end (ROS)\n\nnot run: rclpy' in report
    assert 'node end to end: not run' in rehearsal['cpu'].stdout


def test_without_cuda_the_gpu_run_stops_at_once_saying_so(rehearsal) -> None:
    completed = rehearsal['cuda']
    assert completed.returncode == 2, completed.stdout[-3000:] + completed.stderr[-3000:]
    assert 'no CUDA here' in completed.stdout and 'broken' not in completed.stdout
    out = rehearsal['tmp'] / 'out_cuda'
    probe = json.loads((out / 'probe.json').read_text())
    assert probe['status'] == 'no_cuda' and 'CPU-only build' in probe['reason']
    assert not (out / 'gpu_matrix.json').exists()  # nothing was timed
    report = (out / 'device_check.md').read_text()
    assert 'Probe: **no_cuda**' in report and 'the probe stopped the check first' in report


def test_the_script_installs_nothing_and_uses_no_network() -> None:
    script = (ROOT / 'benchmarks' / 'device_check.sh').read_text()
    code = '\n'.join(line for line in script.splitlines() if not line.lstrip().startswith('#'))
    for forbidden in ('pip ', 'pip3', 'apt', 'curl', 'wget', 'uninstall'):
        assert forbidden not in code, forbidden
    assert os.access(ROOT / 'benchmarks' / 'device_check.sh', os.X_OK)
