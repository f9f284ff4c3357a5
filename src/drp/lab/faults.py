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

    def writable_on_site(self) -> bool:
        try:
            return pg.server_role(self.lab.dsn("dc-db") + " connect_timeout=2").writable
        except PostgresError:
            return False

    def stop_on_site(self) -> str:
        self.lab.cluster("dc-db").stop(mode="fast")
        return "dc-db stopped on site"
