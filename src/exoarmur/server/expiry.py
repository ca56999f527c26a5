"""The TTL engine while serving: a thread that expires due containment controls.

Each tick also raises the quorum of pending intents whose escalation ladder's
window has passed, and releases intents whose referenced evidence has since
arrived (both recorded, both on the governor's clock).

It ticks once when the service starts (so an expiry that fell due while
ExoArmur was down happens now, recording when it was due and when it was
done), then every ``every`` seconds until the service stops. A tick that
fails is logged and tried again at the next one: expiry is recorded before
its revert, so a failed or cut tick is finished by the next.
"""

from __future__ import annotations

import logging
import threading

from ..pipeline import Governor

logger = logging.getLogger("exoarmur.server")
DEFAULT_EVERY_SECONDS = 5.0


class ExpiryLoop:
    def __init__(self, governor: Governor, every: float = DEFAULT_EVERY_SECONDS) -> None:
        self.governor = governor
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="exoarmur-ttl", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def tick(self) -> int:
        try:
            done = len(self.governor.containment.tick())
            for tenant in self.governor.containment.tenants():
                done += len(self.governor.escalate_due(tenant))
                done += len(self.governor.recheck_evidence(tenant))
            return done
        except Exception:  # the loop must outlive a failed tick; the next one finishes it
            logger.exception("containment expiry tick failed; retrying at the next tick")
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.tick()
            self._stop.wait(self.every)
