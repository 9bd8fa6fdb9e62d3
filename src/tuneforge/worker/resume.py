"""On an object store, a running job's latest resume state is kept in the store too, so a worker on
another host that takes the job over resumes it where it was, not from its first step. A thread of its
own uploads it: a large model's optimizer state may take longer than a heartbeat to send."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from tuneforge.store.blobs import BlobStore
from tuneforge.training import layout

log = logging.getLogger(__name__)


class ResumeKeeper:
    def __init__(self, blobs: BlobStore, output_dir: Path, interval_s: float) -> None:
        self.blobs, self.output_dir, self.interval_s = blobs, output_dir, interval_s
        self.key = f"{blobs.key_of(output_dir)}/{layout.RESUME}"
        self.enabled = not blobs.is_local  # a local store is the resume state's own place already
        self._kept: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resume-keeper", daemon=True)

    def restore(self) -> Path | None:
        """Before an attempt: with no resume state on this host, download the latest whole one stored."""
        if not self.enabled or layout.latest_resume_state(self.output_dir) is not None:
            return None
        try:
            stored = self.blobs.listing(self.key)
            whole = [name for name, files in stored.items() if set(layout.RESUME_MARKERS) <= files]
            if not whole:
                return None
            latest = max(whole, key=lambda name: layout.step_of(Path(name)))
            target = self.output_dir / layout.RESUME / latest
            self.blobs.fetch(f"{self.key}/{latest}", target)
        except OSError:  # the store is down: training again from the start gives the same model, later
            log.exception("could not fetch the stored resume state of %s", self.output_dir)
            return None
        self._kept = latest
        return target

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def stop(self, *, keep_last: bool) -> None:
        """End the thread; with `keep_last`, store the state the stopped child left (a worker shutting
        down hands its job back resumable anywhere)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if keep_last and self.enabled:
            self.keep_latest()

    def discard(self) -> None:
        """After success: a finished job keeps no optimizer state, here or in the store."""
        if self.enabled:
            self.blobs.delete(self.key)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.keep_latest()
            except Exception:  # the store may be briefly down; the next round tries again
                log.exception("could not store the resume state of %s", self.output_dir)

    def keep_latest(self) -> None:
        """Upload the newest whole resume state if it is not stored yet, then drop older stored ones. The
        trainer removes a state only after a newer one is whole: a state removed while it was being sent
        shows as a file gone, and its half copy (no markers) is dropped with the others next time."""
        latest = layout.latest_resume_state(self.output_dir)
        if latest is None or latest.name == self._kept:
            return
        try:
            self.blobs.publish(latest, last=layout.RESUME_MARKERS)
        except FileNotFoundError:
            return  # replaced by a newer one meanwhile: the next round sends that
        if not all((latest / marker).exists() for marker in layout.RESUME_MARKERS):
            return  # removed as it was sent
        self._kept = latest.name
        for name in self.blobs.listing(self.key):
            if name != latest.name:
                self.blobs.delete(f"{self.key}/{name}", keep_workspace=True)  # the trainer prunes its own
