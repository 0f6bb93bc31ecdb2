"""What this machine can run, before any GPU time is spent: step 1 of device_check.sh.

A GPU machine may be lent for a few minutes, once, with whatever Python packages its image has
and no package registry. This probe answers three questions in a few seconds and writes them
to JSON, so the later steps never fail on something knowable up front:

* Is the environment whole? numpy, OpenCV and torch import, and so does this package from the
  repository (``PYTHONPATH``) with its default model. If not: status ``broken``, exit 3.
* Is there CUDA? A CPU-only torch wheel, a CUDA build that sees no GPU (driver) and a GPU that
  fails to initialise are told apart. Without CUDA (when ``--device`` asks for it): status
  ``no_cuda``, exit 2. A broken environment is never reported as "no CUDA", nor the reverse.
* Which optional parts are there? OpenVINO, ROS (rclpy and this package's built messages),
  ONNX Runtime's CUDA and TensorRT providers, torch.compile's toolchain (Triton and a C
  compiler). Each is ``{"available": bool, "reason": str}``; the matrix and the report mark
  every missing part "not run: <reason>".

Only the standard library is imported at module level: this must run where numpy is missing.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path
import platform
import shutil
import sys
from typing import Any

EXIT_OK, EXIT_NO_CUDA, EXIT_BROKEN = 0, 2, 3
REQUIRED = ('numpy', 'cv2', 'torch')
#: Distributions whose versions every report names.
DISTRIBUTIONS = ('torch', 'numpy', 'opencv-python-headless', 'opencv-python', 'onnx',
                 'onnxruntime', 'onnxruntime-gpu', 'openvino', 'tensorrt', 'triton')


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _import_error(module: str) -> str | None:
    """None when ``module`` imports, else ``'ExceptionType: message'`` (one line)."""
    try:
        importlib.import_module(module)
    except Exception as error:  # an import can fail with anything (missing .so, ABI)
        return f'{type(error).__name__}: {" ".join(str(error).split())[:300]}'
    return None


def _part(available: bool, reason: str = '') -> dict[str, Any]:
    return {'available': available, 'reason': '' if available else reason}


def probe_environment() -> dict[str, Any]:
    """The required packages and this package: ``{'broken': reason or None, ...}``."""
    missing = {name: error for name in REQUIRED if (error := _import_error(name))}
    result: dict[str, Any] = {'broken': None, 'missing': missing}
    if missing:
        result['broken'] = ('required package(s) cannot be imported: ' + '; '.join(
            f'{name} ({error})' for name, error in missing.items()) + '. The device check '
            'needs python3 with numpy, opencv and torch (no installs are attempted).')
        return result
    for module in ('lw_refinenet_ros.engine', 'lw_refinenet_ros.model',
                   'lw_refinenet_ros.data.conveyor', 'lw_refinenet_ros.cli.bench'):
        error = _import_error(module)
        if error:
            result['broken'] = (f'{module} cannot be imported ({error}); run from the '
                                f'repository root with it on PYTHONPATH (device_check.sh does).')
            return result
    from lw_refinenet_ros.model.weights import DEFAULT_MODEL_PATH

    if not DEFAULT_MODEL_PATH.is_file():
        result['broken'] = f'the default model {DEFAULT_MODEL_PATH} is missing from the tree.'
    return result


def probe_cuda(device: str) -> dict[str, Any]:
    """torch's CUDA build, the GPU it sees, and ``no_cuda``: None or why there is none."""
    import torch

    info: dict[str, Any] = {'torch_cuda_build': torch.version.cuda, 'available': False,
                            'device_count': 0, 'no_cuda': None}
    if torch.version.cuda is None:
        info['no_cuda'] = (f'torch {torch.__version__} is a CPU-only build (torch.version.cuda '
                           f'is None): no GPU can be used by it.')
        return info
    try:
        torch.cuda.init()
        info['device_count'] = torch.cuda.device_count()
    except Exception as error:  # driver missing or too old, no device node, ...
        info['no_cuda'] = (f'torch {torch.__version__} (CUDA {torch.version.cuda}) cannot '
                           f'initialise CUDA: {type(error).__name__}: '
                           f'{" ".join(str(error).split())[:300]}')
        return info
    index = int(device.split(':')[1]) if device.startswith('cuda:') else 0
    if info['device_count'] <= index:
        info['no_cuda'] = (f'torch {torch.__version__} (CUDA {torch.version.cuda}) sees '
                           f'{info["device_count"]} GPU(s); {device} was asked for.')
        return info
    properties = torch.cuda.get_device_properties(index)
    info.update({'available': True, 'name': properties.name,
                 'capability': f'{properties.major}.{properties.minor}',
                 'memory_gib': round(properties.total_memory / 2**30, 1),
                 'bf16': bool(torch.cuda.is_bf16_supported()),
                 'cudnn': torch.backends.cudnn.version(),
                 'tf32_default': {'cudnn': bool(torch.backends.cudnn.allow_tf32),
                                  'matmul': bool(torch.backends.cuda.matmul.allow_tf32)}})
    return info


def probe_optional(cuda: bool) -> dict[str, dict[str, Any]]:
    """Each optional part: available, or the reason it is not (never installs anything)."""
    parts: dict[str, dict[str, Any]] = {}
    error = _import_error('openvino') if importlib.util.find_spec('openvino') else \
        'OpenVINO is not installed'
    parts['openvino'] = _part(error is None, error or '')
    if error is None and cuda:  # OpenVINO has no NVIDIA device: it would run on the CPU
        parts['openvino'] = _part(False, 'OpenVINO has no NVIDIA GPU device (CPU/Intel only)')
    ros_error = _import_error('rclpy') if importlib.util.find_spec('rclpy') else \
        'rclpy (ROS 2) is not installed for this Python'
    if ros_error is None:
        ros_error = _import_error('lw_refinenet_ros.msg')
        if ros_error:
            ros_error = (f"this package's ROS messages are not built for Python "
                         f'{platform.python_version()} ({ros_error}); they come from '
                         f'`make setup` (rosidl), which needs the ROS build tools')
    parts['ros_node'] = _part(ros_error is None, ros_error or '')
    providers: list[str] = []
    ort_error = _import_error('onnxruntime') if importlib.util.find_spec('onnxruntime') else \
        'ONNX Runtime is not installed'
    if ort_error is None:
        import onnxruntime

        providers = list(onnxruntime.get_available_providers())
    flavour = ('onnxruntime-gpu' if _version('onnxruntime-gpu') else
               f'the CPU-only onnxruntime {_version("onnxruntime")}')
    parts['onnxruntime'] = _part(ort_error is None, ort_error or '')
    parts['onnxruntime'].update({'providers': providers})
    for key, provider in (('onnxruntime_cuda', 'CUDAExecutionProvider'),
                          ('onnxruntime_tensorrt', 'TensorrtExecutionProvider')):
        if ort_error:
            parts[key] = _part(False, ort_error)
        elif provider not in providers:
            parts[key] = _part(False, f'{flavour} has no {provider} (providers: '
                                      f'{", ".join(providers)}); no package is installed here')
        elif not cuda:
            parts[key] = _part(False, f'{provider} is installed but there is no CUDA device')
        else:
            parts[key] = _part(True)
    compiler = shutil.which('cc') or shutil.which('gcc') or shutil.which('clang')
    triton_error = None
    if cuda:
        triton_error = _import_error('triton') if importlib.util.find_spec('triton') else \
            'Triton is not installed (torch.compile on CUDA needs it)'
    compile_reason = triton_error or ('' if compiler else
                                      'no C compiler (cc/gcc/clang) on PATH: inductor and '
                                      'Triton build small C modules')
    if compile_reason:  # the matrix still tries: its row then reports what happened
        compile_reason += ' (the compile row is tried anyway and reports its fallback)'
    parts['torch_compile'] = _part(not compile_reason, compile_reason)
    parts['torch_compile']['compiler'] = compiler
    return parts


def probe(device: str) -> dict[str, Any]:
    """Everything above in one JSON-able dict with ``status`` and ``reason``."""
    result: dict[str, Any] = {
        'python': platform.python_version(), 'executable': sys.executable,
        'platform': platform.platform(), 'cpu_count': os.cpu_count(),
        'versions': {dist: _version(dist) for dist in DISTRIBUTIONS},
        'requested_device': device,
    }
    environment = probe_environment()
    result['environment'] = environment
    if environment['broken']:
        result.update(status='broken', reason=environment['broken'])
        return result
    cuda = probe_cuda(device)
    result['cuda'] = cuda
    wants_cuda = device.startswith('cuda')
    result['optional'] = probe_optional(cuda['available'] and wants_cuda)
    if wants_cuda and not cuda['available']:
        result.update(status='no_cuda', reason=cuda['no_cuda'])
    else:
        result.update(status='ok', reason='')
    return result


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as JSON through a temporary file: a kill mid-write leaves the old one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + '.tmp')
    temporary.write_text(json.dumps(data, indent=2, default=str) + '\n', encoding='utf-8')
    os.replace(temporary, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help='cuda, cuda:N or cpu (rehearsal)')
    parser.add_argument('--json', required=True)
    args = parser.parse_args()
    result = probe(args.device)
    write_json(args.json, result)
    print(f'probe: {result["status"]}{": " + result["reason"] if result["reason"] else ""}')
    cuda = result.get('cuda', {})
    if cuda.get('available'):
        print(f'GPU: {cuda["name"]} (capability {cuda["capability"]}, '
              f'{cuda["memory_gib"]} GiB), torch {result["versions"]["torch"]}, '
              f'CUDA {cuda["torch_cuda_build"]}')
    for name, part in result.get('optional', {}).items():
        print(f'  {name}: {"available" if part["available"] else "not run: " + part["reason"]}')
    return {'ok': EXIT_OK, 'no_cuda': EXIT_NO_CUDA}.get(result['status'], EXIT_BROKEN)


if __name__ == '__main__':
    sys.exit(main())
