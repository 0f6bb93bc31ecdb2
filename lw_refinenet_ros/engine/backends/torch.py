"""The torch backend: eager PyTorch, the reference every other runtime is compared with.

It owns a private inference copy of the model (the caller's model, which other backends
export from, is never modified) prepared for speed without changing labels: BatchNorm folded
into the convolutions, channels_last memory format (oneDNN's fast NHWC kernels), and on the
CPU the rewrites of :mod:`~lw_refinenet_ros.engine.backends.torch_rewrites` (CRP pooling and
1x1 convolutions). On CUDA it can replay CUDA graphs or run ``torch.compile``; both fall back
to eager with one log line if they fail, and :meth:`TorchBackend.describe` then says so
(``cuda_graphs`` / ``compile`` report what runs, ``fallbacks`` why the request was not met), so
that a benchmark row never claims graphs or compile for an eager run.

Options arrive in ``request.extra`` (all optional): ``channels_last`` (True), ``fold_batchnorm``
(True), ``cpu_rewrites`` (True), ``compile`` (False), ``compile_backend`` ('inductor'),
``cuda_graphs`` (False), ``cudnn_benchmark`` (True), ``allow_tf32`` (False); None for the
last two leaves the process-wide switches alone.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch

from lw_refinenet_ros.engine.backends.base import BackendRequest
from lw_refinenet_ros.engine.weights_card import loaded_model
from lw_refinenet_ros.errors import ConfigError, EngineError

_LOG = logging.getLogger(__name__)

_DTYPE_NAMES = {torch.float32: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}


def resolve_dtype(precision: str, device: str) -> torch.dtype:
    """The torch dtype that runs ``precision`` on ``device`` (with a log line where the
    device cannot run it natively).

    Raises:
        ConfigError: ``int8`` (the torch backend has no int8 path).
    """
    if precision == 'fp32':
        return torch.float32
    if precision == 'int8':
        raise ConfigError('precision int8 needs backend "openvino"; the torch backend runs '
                          'fp32, fp16 and bf16.')
    if precision not in ('fp16', 'bf16'):
        raise ConfigError(f'Unknown precision {precision!r} for the torch backend.')
    if not device.startswith('cuda'):
        if precision == 'fp16':
            _LOG.warning('precision fp16 is not used on the CPU (its fp16 convolutions are '
                         'emulated and slower than fp32); running fp32. Use bf16 on CPUs '
                         'with native bf16 support.')
            return torch.float32
        return torch.bfloat16
    if precision == 'bf16' and not torch.cuda.is_bf16_supported():
        _LOG.warning('this GPU does not support bf16; running fp16 instead.')
        return torch.float16
    return torch.float16 if precision == 'fp16' else torch.bfloat16


class _GraphForward:
    """Replays a CUDA-graph capture of ``model`` per input shape (static input buffers)."""

    def __init__(self, model: Any, max_graphs: int = 4) -> None:
        self._model = model
        self._graphs: dict[tuple[Any, ...], tuple[Any, Any, Any]] = {}
        self._max_graphs = max_graphs

    def _capture(self, x: torch.Tensor) -> tuple[Any, Any, Any]:
        static_in = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # allocator and cuDNN warm-up before the capture
                self._model(static_in)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = self._model(static_in)
        return graph, static_in, static_out

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        key = tuple(x.shape) + (x.dtype, str(x.stride()))
        entry = self._graphs.get(key)
        if entry is None:
            if len(self._graphs) >= self._max_graphs:
                self._graphs.pop(next(iter(self._graphs)))
            entry = self._capture(x)
            self._graphs[key] = entry
        graph, static_in, static_out = entry
        static_in.copy_(x)
        graph.replay()
        # The next replay overwrites static_out; results are post-processed later.
        return static_out.clone()


class TorchBackend:
    """Eager PyTorch on a CPU or CUDA device; see the module docstring.

    Args:
        model: nn.Module mapping (N, 3, H, W) to (N, K, ceil(H/4), ceil(W/4)) logits; copied.
        request: ``device`` must be resolved (``'cpu'``, ``'cuda'``, ``'cuda:N'``).
    """

    name = 'torch'

    def __init__(self, model: Any, request: BackendRequest) -> None:
        model = loaded_model(model)  # a deferred model (weights_card.py) is needed now
        extra = request.extra
        self.device = request.device
        self._torch_device = torch.device(self.device)
        self._is_cuda = self._torch_device.type == 'cuda'
        self.dtype = resolve_dtype(request.precision, self.device)
        self.precision = _DTYPE_NAMES[self.dtype]
        self.channels_last = bool(extra.get('channels_last', True))
        # K, or K + 1 with the part-boundary channel (model/boundary.py).
        self.num_classes = getattr(model, 'output_channels', getattr(model, 'num_classes', None))
        if request.num_threads and not self._is_cuda:
            torch.set_num_threads(request.num_threads)
        if self._is_cuda:  # process-wide switches; None leaves them as they are
            if extra.get('cudnn_benchmark', True) is not None:
                torch.backends.cudnn.benchmark = bool(extra.get('cudnn_benchmark', True))
            tf32 = extra.get('allow_tf32', False)
            if tf32 is not None:
                torch.backends.cudnn.allow_tf32 = bool(tf32)
                torch.backends.cuda.matmul.allow_tf32 = bool(tf32)
        self._rewrites: dict[str, int] = {}
        self.model = self._prepare(model, fold=bool(extra.get('fold_batchnorm', True)),
                                   rewrite=bool(extra.get('cpu_rewrites', True)))
        self._compile = bool(extra.get('compile', False))
        self._graphs = bool(extra.get('cuda_graphs', False))
        self._requested = {'compile': self._compile, 'cuda_graphs': self._graphs}
        self.fallbacks: list[str] = []  # why a requested acceleration is not running
        self._forward_fn = self._wrap(extra.get('compile_backend', 'inductor'))

    def _prepare(self, model: Any, *, fold: bool, rewrite: bool) -> Any:
        folded = None
        if fold:
            try:
                from lw_refinenet_ros.model.fusion import fold_batchnorm

                folded = fold_batchnorm(model)  # a folded copy
            except Exception as error:  # a foreign module layout must not stop inference
                _LOG.warning('BatchNorm folding failed (%s); running the unfolded model.',
                             error)
        model = folded if folded is not None else copy.deepcopy(model).eval()
        if rewrite and self.channels_last and not self._is_cuda:
            from lw_refinenet_ros.engine.backends.torch_rewrites import rewrite_for_cpu

            self._rewrites = rewrite_for_cpu(model)
        model.requires_grad_(False)
        model = model.to(device=self._torch_device, dtype=self.dtype)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    def _fall_back(self, what: str, reason: str) -> None:
        """``what`` ('compile' or 'cuda_graphs') is not running: say so, now and in describe()."""
        if what == 'compile':
            self._compile = False
        else:
            self._graphs = False
        self.fallbacks.append(f'{what}: {reason}')
        _LOG.warning('%s requested but not in use: %s', what, reason)

    def _wrap(self, compile_backend: Any) -> Any:
        forward = self.model
        if self._compile:
            try:
                forward = torch.compile(self.model, backend=compile_backend, dynamic=False)
            except Exception as error:
                self._fall_back('compile', f'torch.compile is unavailable '
                                           f'({type(error).__name__}: {error}); running eager')
        if self._graphs:
            if not self._is_cuda:
                self._fall_back('cuda_graphs', 'needs a CUDA device; running without graphs')
            elif forward is not self.model:
                self._fall_back('cuda_graphs', 'not combined with compile (use compile mode '
                                               '"reduce-overhead"); running compiled only')
            else:
                forward = _GraphForward(self.model)
        return forward

    def forward_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """(N, 3, h, w) float tensor on this device -> (N, K, h/4, w/4) logits (its dtype)."""
        batch = batch.to(self.dtype)
        batch = batch.contiguous(memory_format=torch.channels_last) if self.channels_last \
            else batch.contiguous()
        try:
            with torch.inference_mode():
                logits = self._forward_fn(batch)
        except torch.cuda.OutOfMemoryError as error:
            torch.cuda.empty_cache()
            raise EngineError(f'CUDA out of memory for input {tuple(batch.shape)}; lower '
                              f'max_side, the batch size, or use fp16 ({error}).') from error
        except Exception as error:
            if self._forward_fn is not self.model:
                # Compilation and graph capture happen on the first call: a failure there
                # leaves eager running, and describe() must no longer claim the accelerated
                # path (a benchmark row would otherwise mislabel an eager time).
                reason = (f'failed on a {tuple(batch.shape)} input ({type(error).__name__}: '
                          f'{" ".join(str(error).split())[:300]}); running eager')
                self._fall_back('cuda_graphs' if self._graphs else 'compile', reason)
                self._forward_fn = self.model
                return self.forward_tensor(batch)
            raise EngineError(f'forward pass failed for input {tuple(batch.shape)}: '
                              f'{type(error).__name__}: {error}') from error
        if not isinstance(logits, torch.Tensor) or logits.ndim != 4 or (
                self.num_classes is not None and logits.shape[1] != self.num_classes):
            raise EngineError(f'the model returned {getattr(logits, "shape", type(logits))}; '
                              f'expected (N, {self.num_classes or "K"}, h, w) logits.')
        return logits

    def forward(self, batch: np.ndarray) -> np.ndarray:
        """The Backend contract: NCHW float32 numpy in, float32 numpy logits out."""
        from lw_refinenet_ros.engine.backends import check_batch

        check_batch(batch)
        logits = self.forward_tensor(torch.from_numpy(batch).to(self._torch_device))
        return logits.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        """Effective settings after fallbacks: ``compile`` and ``cuda_graphs`` say what runs
        (``*_requested`` what was asked for, ``fallbacks`` why they differ); on CUDA ``tf32``
        and ``cudnn_benchmark`` are the process-wide switches as they are now."""
        info = {'backend': self.name, 'precision': self.precision, 'device': self.device,
                'channels_last': self.channels_last, 'compile': self._compile,
                'cuda_graphs': self._graphs, 'compile_requested': self._requested['compile'],
                'cuda_graphs_requested': self._requested['cuda_graphs'],
                'fallbacks': list(self.fallbacks), 'cpu_rewrites': dict(self._rewrites),
                'num_threads': torch.get_num_threads()}
        if self._is_cuda:
            info['tf32'] = {'cudnn': bool(torch.backends.cudnn.allow_tf32),
                            'matmul': bool(torch.backends.cuda.matmul.allow_tf32)}
            info['cudnn_benchmark'] = bool(torch.backends.cudnn.benchmark)
        return info
