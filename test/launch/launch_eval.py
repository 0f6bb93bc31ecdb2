"""Helpers for the launch-file tests: launch stubs and a small launch-frontend evaluator.

launch, launch_ros and ros2launch have no pip wheels (docs/architecture.md §7), so the
Python launch files run against recording stubs and the XML/YAML files go through a small
evaluator of the frontend subset they use (arg, set_env, node, lifecycle_node, include; the
substitutions var, find-pkg-share, env and eval). Both produce the same plain description of
what a real ``ros2 launch`` would start, so the three formats can be compared for equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
import importlib.util
import os
from pathlib import Path
import shlex
import sys
import types
from typing import Any, Mapping
import xml.etree.ElementTree as ET

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = 'lw_refinenet_ros'
NODE_NAME = 'lw_refinenet'
_SHARE_MARK = '\x00share:'


# --------------------------------------------------------------------------- package lookup

def _ament_prefixes() -> list[Path]:
    """AMENT_PREFIX_PATH entries, then sys.prefix (the pip wheels do not set the variable)."""
    prefixes = [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    return prefixes


def installed_share(package: str) -> Path | None:
    """``share/<package>`` of the first prefix whose ament index lists ``package``."""
    for prefix in _ament_prefixes():
        if (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / package).exists():
            return prefix / 'share' / package
    return None


def resolve_share_file(package: str, relative: str) -> str:
    """What ``$(find-pkg-share package)/relative`` names: installed copy, else the source tree.

    The source tree stands in for this package when it is not installed (or was installed
    before the file existed), so the tests work in a fresh checkout.
    """
    share = installed_share(package)
    if share is not None and (share / relative).exists():
        return str(share / relative)
    if package == PACKAGE:
        return str(REPO / relative)
    return str(Path(share or f'/nonexistent/share/{package}') / relative)


def _resolve_marks(text: str) -> str:
    """Replace a leading find-pkg-share mark (``<mark>pkg/rel/path``) by a real path."""
    if not text.startswith(_SHARE_MARK):
        return text
    package, _, relative = text[len(_SHARE_MARK):].partition('/')
    return resolve_share_file(package, relative) if relative else resolve_share_file(package, '')


def is_true(text: str) -> bool:
    """launch's IfCondition rule: 'true'/'1' hold, 'false'/'0' do not, anything else is wrong."""
    value = text.strip().lower()
    if value not in ('true', '1', 'false', '0'):
        raise ValueError(f'condition value {text!r} is not true/false/1/0')
    return value in ('true', '1')


# --------------------------------------------------------------------------- the description

@dataclass
class NodeDesc:
    """One process a launch would start, in launch-format-independent terms."""

    kind: str                       # 'node' or 'lifecycle_node'
    package: str
    executable: str
    name: str | None
    namespace: str
    param_files: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)
    remaps: list[tuple[str, str]] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


@dataclass
class LaunchDesc:
    """Declared arguments (name -> (default, description)), environment and nodes."""

    arguments: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    choices: dict[str, list[str]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    nodes: list[NodeDesc] = field(default_factory=list)

    def node(self, executable: str) -> NodeDesc:
        """The one node started from ``executable`` (fails when there are none or several)."""
        found = [n for n in self.nodes if n.executable == executable]
        assert len(found) == 1, f'expected one {executable} node, got {self.nodes}'
        return found[0]


# --------------------------------------------------------------------------- parameters files
# Keys under which a parameters file can address the node: rcl matches `lw_refinenet` only in
# the root namespace, `/**/lw_refinenet` in any namespace, `/**` every node.
NODE_KEYS = (NODE_NAME, f'/{NODE_NAME}', f'/**/{NODE_NAME}', '/**')


def flatten(mapping: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    """Nested parameter dicts as dotted names, as rcl reads them (model: {arch} -> model.arch)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def read_node_parameters(path: Path | str) -> tuple[str, dict[str, Any]]:
    """The node section of a parameters file: (key used, flattened ros__parameters)."""
    document = yaml.safe_load(Path(path).read_text())
    assert isinstance(document, dict), f'{path}: not a YAML mapping'
    keys = [k for k in NODE_KEYS if k in document]
    assert keys, (f'{path}: no section for the node; expected one of {NODE_KEYS}, '
                  f'got {list(document)}')
    section = document[keys[0]]
    assert isinstance(section, dict) and 'ros__parameters' in section, (
        f'{path}: section {keys[0]!r} has no ros__parameters')
    return keys[0], flatten(section['ros__parameters'])



# --------------------------------------------------------------------------- Python launch stubs

class Recorded:
    """Base of every stub: remembers how it was constructed."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __repr__(self) -> str:
        return f'{type(self).__name__}(*{self.args!r}, **{self.kwargs!r})'


class LaunchDescriptionStub(Recorded):
    @property
    def entities(self) -> list[Any]:
        return list(self.args[0] if self.args else self.kwargs.get('initial_entities', []))


class DeclareLaunchArgumentStub(Recorded):
    @property
    def name(self) -> str:
        return self.args[0] if self.args else self.kwargs['name']


_STUB_MODULES: dict[str, tuple[str, ...]] = {
    'launch': ('LaunchDescription', 'LaunchContext', 'Action', 'Substitution'),
    'launch.actions': ('DeclareLaunchArgument', 'IncludeLaunchDescription', 'LogInfo',
                       'GroupAction', 'SetEnvironmentVariable', 'OpaqueFunction',
                       'RegisterEventHandler', 'EmitEvent', 'TimerAction', 'ExecuteProcess'),
    'launch.substitutions': ('LaunchConfiguration', 'PathJoinSubstitution', 'TextSubstitution',
                             'PythonExpression', 'EnvironmentVariable', 'EqualsSubstitution'),
    'launch.conditions': ('IfCondition', 'UnlessCondition', 'LaunchConfigurationEquals'),
    'launch.launch_description_sources': ('PythonLaunchDescriptionSource',
                                          'AnyLaunchDescriptionSource',
                                          'FrontendLaunchDescriptionSource'),
    'launch.event_handlers': ('OnProcessStart', 'OnProcessExit', 'OnStateTransition'),
    'launch_ros': (),
    'launch_ros.events': (),
    'launch_ros.actions': ('Node', 'LifecycleNode', 'SetParameter', 'PushRosNamespace',
                           'ComposableNodeContainer'),
    'launch_ros.substitutions': ('FindPackageShare', 'FindPackagePrefix'),
    'launch_ros.events.lifecycle': ('ChangeState',),
}
_SPECIAL = {'LaunchDescription': LaunchDescriptionStub,
            'DeclareLaunchArgument': DeclareLaunchArgumentStub}


def install_launch_stubs(monkeypatch: pytest.MonkeyPatch) -> dict[str, type]:
    """Put recording stand-ins for launch/launch_ros into sys.modules (undone after the test)."""
    classes: dict[str, type] = {}
    modules: dict[str, types.ModuleType] = {}
    for module_name, names in _STUB_MODULES.items():
        module = types.ModuleType(module_name)
        module.__path__ = []  # a package, so that submodule imports work
        for name in names:
            cls = classes.get(name) or type(name, (_SPECIAL.get(name, Recorded),), {})
            classes[name] = cls
            setattr(module, name, cls)
        modules[module_name] = module
        monkeypatch.setitem(sys.modules, module_name, module)
    for module_name, module in modules.items():
        parent, _, child = module_name.rpartition('.')
        if parent:
            setattr(modules[parent], child, module)
    return classes


def load_python_launch(path: Path) -> Any:
    """Import a .launch.py file (stubs must be installed) and return its LaunchDescription."""
    spec = importlib.util.spec_from_file_location(
        '_launch_' + path.name.replace('.', '_'), path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate_launch_description()


def render(value: Any, config: Mapping[str, str]) -> str:
    """Evaluate stub substitutions to the string launch would produce."""
    if value is None:
        return ''
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ''.join(render(v, config) for v in value)
    kind = type(value).__name__
    if kind == 'LaunchConfiguration':
        name = value.args[0]
        if name in config:
            return config[name]
        if 'default' in value.kwargs:
            return render(value.kwargs['default'], config)
        raise KeyError(f'launch configuration {name!r} is not declared')
    if kind == 'TextSubstitution':
        return value.kwargs.get('text', value.args[0] if value.args else '')
    if kind == 'PathJoinSubstitution':
        return _resolve_marks(os.path.join(*[render(p, config) for p in value.args[0]]))
    if kind == 'FindPackageShare':
        return _SHARE_MARK + render(value.args[0] if value.args else value.kwargs['package'],
                                    config)
    if kind == 'PythonExpression':
        return str(eval(render(value.args[0], config)))  # noqa: S307 (launch does the same)
    if kind == 'EnvironmentVariable':
        return os.environ.get(render(value.args[0], config),
                              render(value.kwargs.get('default_value', ''), config))
    raise TypeError(f'no renderer for substitution {value!r}')


def condition_holds(condition: Any, config: Mapping[str, str]) -> bool:
    """Evaluate an IfCondition/UnlessCondition stub (None: unconditional)."""
    if condition is None:
        return True
    kind = type(condition).__name__
    predicate = is_true(render(condition.args[0], config))
    if kind == 'IfCondition':
        return predicate
    if kind == 'UnlessCondition':
        return not predicate
    raise TypeError(f'no evaluator for condition {condition!r}')


def _render_param_value(value: Any, config: Mapping[str, str]) -> str:
    """A parameter dict value as launch_ros normalises it, written as the string it evaluates to.

    launch_ros joins a list that holds a substitution (plus plain strings) into ONE string, so
    ``[LaunchConfiguration('w'), LaunchConfiguration('h')]`` becomes '640480', not a list; a
    list of lists gives one element per inner list; a list of plain scalars stays a list.
    """
    if not isinstance(value, (list, tuple)):
        return render(value, config)
    if any(isinstance(v, Recorded) for v in value) and all(
            isinstance(v, (str, Recorded, list, tuple)) for v in value):
        return render(value, config)
    return '[' + ', '.join(render(v, config) for v in value) + ']'


def describe_python(path: Path, overrides: Mapping[str, str] | None = None) -> LaunchDesc:
    """Run a .launch.py (stubs installed) as launch would, for the given arguments."""
    desc = LaunchDesc()
    config: dict[str, str] = {}
    _walk_python(load_python_launch(path).entities, dict(overrides or {}), config, desc)
    return desc


def _walk_python(entities: list[Any], overrides: dict[str, str], config: dict[str, str],
                 desc: LaunchDesc) -> None:
    for entity in entities:
        kind = type(entity).__name__
        if not condition_holds(entity.kwargs.get('condition'), config):
            continue
        if kind == 'DeclareLaunchArgument':
            default = entity.kwargs.get('default_value')
            rendered = None if default is None else render(default, config)
            desc.arguments[entity.name] = (rendered, entity.kwargs.get('description', ''))
            if entity.kwargs.get('choices') is not None:
                desc.choices[entity.name] = list(entity.kwargs['choices'])
            config[entity.name] = overrides.get(entity.name, rendered)
        elif kind == 'SetEnvironmentVariable':
            name = render(entity.args[0] if entity.args else entity.kwargs['name'], config)
            value = entity.args[1] if len(entity.args) > 1 else entity.kwargs['value']
            desc.env[name] = render(value, config)
        elif kind in ('Node', 'LifecycleNode'):
            desc.nodes.append(_python_node(entity, config))
        elif kind == 'IncludeLaunchDescription':
            source = entity.args[0] if entity.args else entity.kwargs['launch_description_source']
            target = Path(render(source.args[0], config))
            args = {render(k, config): render(v, config)
                    for k, v in entity.kwargs.get('launch_arguments', ())}
            # Included files see the parent's configuration plus the given arguments.
            included = describe_any(target, {**config, **args})
            desc.env.update(included.env)
            desc.nodes.extend(included.nodes)
        else:
            raise TypeError(f'no evaluator for launch entity {entity!r}')


def _python_node(entity: Any, config: Mapping[str, str]) -> NodeDesc:
    kw = entity.kwargs
    node = NodeDesc(
        kind='lifecycle_node' if type(entity).__name__ == 'LifecycleNode' else 'node',
        package=render(kw['package'], config),
        executable=render(kw['executable'], config),
        name=render(kw['name'], config) if kw.get('name') is not None else None,
        namespace=render(kw.get('namespace', ''), config),
        arguments=[render(a, config) for a in kw.get('arguments', [])])
    for item in kw.get('parameters', []):
        if isinstance(item, dict):
            node.params.update({k: _render_param_value(v, config) for k, v in item.items()})
        else:
            node.param_files.append(render(item, config))
    node.remaps = [(render(a, config), render(b, config)) for a, b in kw.get('remappings', [])]
    return node


# --------------------------------------------------------------------------- XML / YAML frontend

def substitute(text: Any, config: Mapping[str, str]) -> str:
    """Expand ``$(var x)``, ``$(find-pkg-share p)``, ``$(env X)`` and ``$(eval "...")``."""
    if text is None:
        return ''
    if not isinstance(text, str):
        return 'true' if text is True else 'false' if text is False else str(text)
    value, end = _parse_text(text, 0, config, stop='')
    assert end == len(text), f'unbalanced substitution in {text!r}'
    return _resolve_marks(value)


def _parse_text(text: str, i: int, config: Mapping[str, str], stop: str) -> tuple[str, int]:
    """Literal text with nested substitutions, up to (not including) a char in ``stop``."""
    out = []
    while i < len(text) and text[i] not in stop:
        if text.startswith('$(', i):
            value, i = _parse_substitution(text, i + 2, config)
            out.append(value)
        else:
            out.append(text[i])
            i += 1
    return ''.join(out), i


def _parse_substitution(text: str, i: int, config: Mapping[str, str]) -> tuple[str, int]:
    j = i
    while j < len(text) and text[j] not in ' )':
        j += 1
    name, i, args = text[i:j], j, []
    while True:
        while i < len(text) and text[i] == ' ':
            i += 1
        if i >= len(text):
            raise ValueError(f'unterminated $({name} ...) in {text!r}')
        if text[i] == ')':
            i += 1
            break
        if text[i] in '"\'':
            quote = text[i]
            value, i = _parse_text(text, i + 1, config, stop=quote)
            i += 1
        else:
            value, i = _parse_text(text, i, config, stop=' )')
        args.append(value)
    if name == 'var':
        if args[0] not in config:
            raise KeyError(f'launch argument {args[0]!r} is not declared')
        return config[args[0]], i
    if name == 'find-pkg-share':
        return _SHARE_MARK + args[0], i
    if name == 'env':
        return os.environ.get(args[0], args[1] if len(args) > 1 else ''), i
    if name == 'eval':
        return str(eval(args[0])), i  # noqa: S307 (launch does the same)
    raise ValueError(f'substitution $({name}) is not supported by this evaluator')


def _xml_to_entities(root: ET.Element) -> list[dict[str, Any]]:
    """XML launch elements as the same {tag: body} dicts as the YAML frontend."""
    entities = []
    for element in root:
        if not isinstance(element.tag, str):
            continue  # comments
        body: dict[str, Any] = dict(element.attrib)
        for child in element:
            if isinstance(child.tag, str):
                body.setdefault(child.tag, []).append(dict(child.attrib))
        entities.append({element.tag: body})
    return entities


def describe_frontend(path: Path, overrides: Mapping[str, str] | None = None) -> LaunchDesc:
    """Evaluate a .launch.xml or .launch.yaml file for the given arguments."""
    if path.suffix == '.xml':
        root = ET.parse(path).getroot()
        assert root.tag == 'launch', f'{path}: root element is {root.tag}, expected launch'
        entities = _xml_to_entities(root)
    else:
        document = yaml.safe_load(path.read_text())
        assert set(document) == {'launch'}, f'{path}: top level must be "launch:"'
        entities = document['launch']
    desc = LaunchDesc()
    config: dict[str, str] = {}
    overrides = dict(overrides or {})
    for entity in entities:
        (tag, body), = entity.items()
        if not _frontend_condition(body, config):
            continue
        if tag == 'arg':
            default = body.get('default')
            rendered = None if default is None else substitute(default, config)
            desc.arguments[body['name']] = (rendered, body.get('description', ''))
            if body.get('choice'):
                desc.choices[body['name']] = [c['value'] for c in body['choice']]
            config[body['name']] = overrides.get(body['name'], rendered)
        elif tag == 'set_env':
            desc.env[substitute(body['name'], config)] = substitute(body['value'], config)
        elif tag in ('node', 'lifecycle_node'):
            desc.nodes.append(_frontend_node(tag, body, config))
        elif tag == 'include':
            args = {a['name']: substitute(a['value'], config) for a in body.get('arg', [])}
            included = describe_any(Path(substitute(body['file'], config)), {**config, **args})
            desc.env.update(included.env)
            desc.nodes.extend(included.nodes)
        else:
            raise ValueError(f'{path}: launch element {tag!r} is not supported by this evaluator')
    return desc


def _frontend_condition(body: Mapping[str, Any], config: Mapping[str, str]) -> bool:
    if 'if' in body and not is_true(substitute(body['if'], config)):
        return False
    return not ('unless' in body and is_true(substitute(body['unless'], config)))


def _frontend_node(tag: str, body: Mapping[str, Any], config: Mapping[str, str]) -> NodeDesc:
    node = NodeDesc(
        kind=tag, package=substitute(body['pkg'], config),
        executable=substitute(body['exec'], config),
        name=substitute(body['name'], config) if 'name' in body else None,
        namespace=substitute(body.get('namespace', ''), config),
        arguments=shlex.split(substitute(body.get('args', ''), config)))
    for param in body.get('param', []):
        if 'from' in param:
            node.param_files.append(substitute(param['from'], config))
        else:
            node.params[param['name']] = substitute(param['value'], config)
    node.remaps = [(substitute(r['from'], config), substitute(r['to'], config))
                   for r in body.get('remap', [])]
    return node


def describe_any(path: Path, overrides: Mapping[str, str] | None = None) -> LaunchDesc:
    """Dispatch on the file type, as ``ros2 launch`` does."""
    if path.name.endswith('.py'):
        return describe_python(path, overrides)
    return describe_frontend(path, overrides)


def launch_param_value(text: str) -> Any:
    """The typed value launch_ros writes for a substituted ``<param value=...>`` string.

    launch_ros YAML-parses the string and accepts only scalars or uniform lists of scalars, so
    an empty string (YAML null) aborts the launch: values that may be empty must be quoted.
    """
    value = yaml.safe_load(text)
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list) and value and all(
            type(v) is type(value[0]) and isinstance(v, (bool, int, float, str)) for v in value):
        return value
    raise TypeError(f'launch_ros rejects parameter value {text!r} (YAML gives {value!r})')


def describe(path: Path, **arguments: str) -> LaunchDesc:
    """``describe_any`` with keyword arguments (the launch stubs must be installed)."""
    return describe_any(path, arguments)
