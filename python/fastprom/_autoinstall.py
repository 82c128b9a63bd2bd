"""Run `fastprom.install()` at interpreter start: imported by `fastprom_install.pth`.

The .pth line checks `FASTPROM_INSTALL` itself (`1`, `true`, `yes` or `on`, in any case) and
imports this module only then, so an interpreter without the variable never imports fastprom.
"""

from ._install import install

install()
