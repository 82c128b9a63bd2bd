"""Both libraries' modules, for tests that run the same code on each."""

import importlib

REF_NAME = 'prometheus_client'
IMPL_NAME = 'fastprom'


class Lib:
    def __init__(self, root):
        imp = importlib.import_module
        self.name = root
        self.root = imp(root)
        self.core = imp(root + '.core')
        self.metrics = imp(root + '.metrics')
        self.registry = imp(root + '.registry')
        self.exposition = imp(root + '.exposition')
        self.om = imp(root + '.openmetrics.exposition')
        self.samples = imp(root + '.samples')
        self.validation = imp(root + '.validation')
        self.metrics_core = imp(root + '.metrics_core')
        self.utils = imp(root + '.utils')
        self.context_managers = imp(root + '.context_managers')

    def __getattr__(self, item):
        return getattr(self.root, item)


def family_blocks(body: bytes) -> list:
    """An exposition split into its metric-family blocks, sorted: for outputs whose family order
    is not specified (a restricted registry iterates a set; a multiprocess merge follows the
    directory's order)."""
    blocks, current = [], []
    for line in body.splitlines(keepends=True):
        if line.startswith(b'# HELP ') and current:
            blocks.append(b''.join(current))
            current = []
        current.append(line)
    if current:
        blocks.append(b''.join(current))
    return sorted(blocks)


def sample_values(text) -> dict:
    """{(sample name, frozenset(labels)): value} of an exposition, parsed with the reference's
    parser; a series listed twice fails."""
    from prometheus_client.parser import text_string_to_metric_families
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f'duplicate series {key}'
            out[key] = s.value
    return out


def sample_value(samples: dict, name: str, **labels):
    return samples.get((name, frozenset(labels.items())))
