"""The package's import graph has no circles and no import pointing up the layer order.

The graph is read from the source with ``ast`` (every ``import`` statement, also those inside
functions and under ``TYPE_CHECKING``: a deferred or type-only import is still a dependency
a reader has to follow). Nodes are modules; a layer is a set of top-level units of the package
(a module such as ``segmenter.py`` or a package such as ``engine/``). A module may import its
own layer and the layers below it, never one above; docs/architecture.md §1 draws the same
table. The generated ROS messages (``lw_refinenet_ros.msg``) are outside the graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = 'lw_refinenet_ros'
ROOT = Path(__file__).resolve().parents[2] / PACKAGE

#: Bottom to top. Each unit of the package is in exactly one layer.
LAYERS: tuple[tuple[str, frozenset[str]], ...] = (
    # ``__init__`` is the package root: its version and path, nothing imported.
    ('foundation', frozenset({'__init__', 'atomic', 'heap', 'errors', 'constants', 'options',
                              'sizes', 'percentiles', 'stats', 'palette', 'classes',
                              'scheduler'})),
    ('model', frozenset({'model', 'reference_pipeline'})),
    ('engine', frozenset({'engine'})),
    ('objects', frozenset({'objects'})),
    ('facade', frozenset({'config', 'segmenter'})),
    ('data', frozenset({'data'})),
    ('tools', frozenset({'evaluation', 'training', 'bench', 'ros'})),
    ('apps', frozenset({'view', 'demo', 'testing'})),
    ('entry', frozenset({'cli', '__main__'})),
)
OUTSIDE = frozenset({'msg'})

#: Circles tolerated while they are being removed (none today): each listed one must stay
#: exactly as listed (a new or a grown circle fails), and one that disappears fails too, so
#: that its line is deleted here: the list only shrinks.
KNOWN_CIRCLES: tuple[tuple[str, ...], ...] = ()


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob('*.py'):
        parts = (PACKAGE, *path.relative_to(ROOT).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts = parts[:-1]
        modules['.'.join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    while name and name not in modules:
        name = name.rpartition('.')[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (statements anywhere in the file)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == '__init__.py'
        for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ''
                if node.level:
                    anchor = name.split('.') if is_package else name.split('.')[:-1]
                    anchor = anchor[:len(anchor) - node.level + 1]
                    base = '.'.join(anchor + ([base] if base else []))
                # ``from pkg import sub`` imports the submodule when there is one.
                targets = [f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules
                           else base for alias in node.names]
            for target in targets:
                if not target.startswith(PACKAGE + '.') and target != PACKAGE:
                    continue
                if _unit(target) in OUTSIDE:
                    continue
                resolved = _resolve(target, modules)
                if resolved is not None and resolved != name:
                    graph[name].add(resolved)
    return graph


def _unit(module: str) -> str:
    parts = module.split('.')
    return parts[1] if len(parts) > 1 else '__init__'


def _layer_of() -> dict[str, int]:
    return {unit: index for index, (_, units) in enumerate(LAYERS) for unit in units}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_unit_of_the_package_has_a_layer() -> None:
    units = {_unit(module) for module in _modules()} - OUTSIDE
    layer = _layer_of()
    assert sorted(units - set(layer)) == [], 'add new modules/packages to LAYERS'
    assert sum(len(units) for _, units in LAYERS) == len(layer), 'a unit in two layers'


def test_the_import_graph_is_read() -> None:
    """Guard against a vacuous pass: known edges of each kind are found."""
    graph = import_graph()
    assert 'lw_refinenet_ros.engine' in graph['lw_refinenet_ros.segmenter']  # a package
    assert 'lw_refinenet_ros.errors' in graph['lw_refinenet_ros.sizes']  # top level
    assert 'lw_refinenet_ros.segmenter' in graph['lw_refinenet_ros.cli.segment']  # in run()
    assert 'lw_refinenet_ros.model.checkpoint' in graph['lw_refinenet_ros.segmenter']  # typing
    assert circles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_no_import_circles() -> None:
    found = {tuple(group) for group in circles(import_graph())}
    assert sorted(found - set(KNOWN_CIRCLES)) == [], 'new import circle(s)'
    assert sorted(set(KNOWN_CIRCLES) - found) == [], 'fixed: delete it from KNOWN_CIRCLES'


def test_no_import_points_up_a_layer() -> None:
    layer = _layer_of()
    names = [name for name, _ in LAYERS]
    upward = sorted(
        f'{source} ({names[layer[_unit(source)]]}) imports {target} '
        f'({names[layer[_unit(target)]]})'
        for source, targets in import_graph().items() for target in targets
        if layer[_unit(target)] > layer[_unit(source)])
    assert upward == []
