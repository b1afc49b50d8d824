"""Noticing a service worker that died, so that the server log says so.

BentoML's arbiter restarts a worker process that exits, silently. A worker that is killed (out of
memory, SIGKILL) or crashes takes the connections it had accepted with it: their clients see the
connection close, and no other process can answer them, because the socket of an accepted
connection lives in the worker alone. What can be done is to say it happened: each worker leaves a
marker file while it runs and removes it when it shuts down cleanly; a worker that finds its
predecessor's marker at start-up logs the death.

The marker is named after the arbiter (the worker's parent process) and the worker's index, in the
temporary directory; the arbiter's deployment hook clears its own markers before any worker starts,
so a marker left by an earlier server whose process id was reused is never mistaken for a death.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

PREFIX = "arabic-ner-worker"


def marker_path(arbiter_pid: int, worker_index: int) -> Path:
    """The marker of worker ``worker_index`` of the server whose arbiter is ``arbiter_pid``.

    >>> marker_path(41, 1).name
    'arabic-ner-worker-41-1.pid'
    """
    return Path(tempfile.gettempdir()) / f"{PREFIX}-{arbiter_pid}-{worker_index}.pid"


def clear_markers(arbiter_pid: int) -> None:
    """Remove the markers of a previous server that ran under this process id (in the arbiter)."""
    for path in Path(tempfile.gettempdir()).glob(f"{PREFIX}-{arbiter_pid}-*.pid"):
        path.unlink(missing_ok=True)


def worker_started(worker_index: int, logger: logging.Logger) -> Path:
    """Log the death of the previous worker of this index, if it died; leave this worker's marker."""
    marker = marker_path(os.getppid(), worker_index)
    if marker.exists():
        previous = marker.read_text(encoding="utf-8").strip() or "unknown"
        logger.error(
            "Worker %d (pid %s) ended without shutting down (killed, out of memory or crashed): the requests it "
            "was answering got a closed connection. This worker (pid %d) replaces it.",
            worker_index,
            previous,
            os.getpid(),
        )
    marker.write_text(str(os.getpid()), encoding="utf-8")
    return marker
