"""Output that outlives its reader: ``lotterysearch search CONFIG | head -1`` must not end a search.

Python ignores SIGPIPE, so a write to a pipe whose reader has gone (``head``, a pager quit early, a dead
``tee``) raises ``BrokenPipeError``. A search's progress lines are a courtesy, not its result (that is the
store): ``say`` swallows the error and points the stream at ``/dev/null`` for the rest of the process, so
the search goes on quietly and ends ``finished``, and the interpreter's final flush has nowhere to fail.
"""

from __future__ import annotations

import os
import select
import sys
from typing import TextIO


def silence(stream: TextIO) -> None:
    """Send the rest of ``stream``'s output to ``/dev/null`` (its file descriptor is replaced, so buffered
    text and later writes, ours or a library's, go nowhere). A stream without a descriptor is left alone."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # a StringIO, pytest's capture
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def reader_gone(stream: TextIO) -> bool:
    """Whether ``stream`` is a pipe whose reading end is closed (the kernel flags its write end POLLERR)."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    poll = select.poll()
    poll.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poll.poll(0))


def say(text: str = "", *, file: TextIO | None = None, end: str = "\n") -> None:
    """``print(text, flush=True)`` that never raises for a closed pipe: the stream is silenced instead."""
    stream = sys.stdout if file is None else file
    try:
        print(text, file=stream, end=end, flush=True)
    except BrokenPipeError:
        silence(stream)
