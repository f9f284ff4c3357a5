"""The lab as a drill's fault injector (:class:`drp.topology.FaultInjector`): the drill's tasks
break and mend the lab through this, never through :class:`drp.lab.core.Lab` itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drp.adapters import postgres as pg
from drp.errors import PostgresError
from drp.lab.core import Lab


@dataclass(frozen=True)
class LabFaults:
    lab: Lab

    def inject(self, fault: str, **options: Any) -> str:
        return self.lab.break_(fault, **options)

    def repair(self) -> list[str]:
        return self.lab.repair()

    def _writable_dc_servers(self) -> list[str]:
        """Every pair's DC server that, seen on site (not through the cut uplink), still
        accepts writes — on a site lab that is every pair, not only the main one."""
        writable = []
        for pair in self.lab.shape.pairs:
            try:
                if pg.server_role(self.lab.dsn(pair.dc) + " connect_timeout=2").writable:
                    writable.append(pair.dc)
            except PostgresError:
                continue
        return writable

    def writable_on_site(self) -> bool:
        return bool(self._writable_dc_servers())

    def stop_on_site(self) -> str:
        stopped = self._writable_dc_servers()
        for name in stopped:
            self.lab.cluster(name).stop(mode="fast")
        return f"{', '.join(stopped) or 'no DC database'} stopped on site"
