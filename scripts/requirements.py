"""Print the requirements that ``make setup`` installs into .venv, read from pyproject.toml.

One source of truth: the build requirements (so ``pip install --no-build-isolation`` can
rebuild the messages in seconds), the runtime dependencies and the named extras.

Usage: python scripts/requirements.py [EXTRA ...]
"""

import pathlib
import sys

import tomllib


def main() -> int:
    pyproject = tomllib.loads(
        (pathlib.Path(__file__).resolve().parent.parent / 'pyproject.toml').read_text())
    requirements = list(pyproject['build-system']['requires'])
    requirements += pyproject['project']['dependencies']
    for extra in sys.argv[1:]:
        requirements += pyproject['project']['optional-dependencies'][extra]
    print('\n'.join(dict.fromkeys(requirements)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
