"""`fastprom.install()`: make `import prometheus_client` give fastprom in this process."""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_REFERENCE = 'prometheus_client'


def _target(fullname: str) -> str:
    return 'fastprom' + fullname[len(_REFERENCE):]


class _PrometheusClientAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `prometheus_client` and `prometheus_client.<sub>` to the fastprom modules."""

    def find_spec(self, fullname, path, target=None):
        if fullname == _REFERENCE or fullname.startswith(_REFERENCE + '.'):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        # The fastprom module itself stands in: its own __name__ and __spec__ are kept.
        return importlib.import_module(_target(spec.name))

    def exec_module(self, module):
        pass


def install() -> None:
    """Make every later `import prometheus_client[.sub]` in this process resolve to fastprom.

    Idempotent. Modules that imported prometheus_client before this call keep the objects
    they already hold, so a warning says so.
    """
    import fastprom

    current = sys.modules.get(_REFERENCE)
    if current is fastprom:
        return
    if current is not None:
        warnings.warn(
            'prometheus_client was imported before fastprom.install(); code that already '
            'imported it keeps using prometheus_client. Call fastprom.install() earlier.',
            RuntimeWarning, stacklevel=2)
        for name in [n for n in sys.modules if n == _REFERENCE or n.startswith(_REFERENCE + '.')]:
            del sys.modules[name]
    if not any(isinstance(f, _PrometheusClientAlias) for f in sys.meta_path):
        sys.meta_path.insert(0, _PrometheusClientAlias())
    for name, module in list(sys.modules.items()):
        if name == 'fastprom' or name.startswith('fastprom.'):
            sys.modules[_REFERENCE + name[len('fastprom'):]] = module
