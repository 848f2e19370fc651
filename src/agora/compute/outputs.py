"""Bounds on what a task's outputs may be before they are collected and signed for.

The usage receipt lists every output (path, name, sha256, size), and a receipt is one signed message:
it must fit `agora.wire` limits (at most `wire.usage.MAX_OUTPUTS` entries, `DEFAULT_MAX_MESSAGE` bytes).
A task that writes 30,000 small files would make a receipt no one can sign or read, and its end would
go unrecorded. So before anything is hashed into the CAS the outputs dir is surveyed (a bounded walk
that stops once it has seen one file too many) and a task over the node's bound ends
`task_output_limit` with a signed receipt that lists no outputs; over its disk, `task_disk_limit`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from agora.errors import AgoraError
from agora.wire.messages import DEFAULT_MAX_MESSAGE
from agora.wire.usage import MAX_OUTPUTS as WIRE_MAX_OUTPUTS

ENTRY_OVERHEAD = 128  # CBOR keys, a 64-hex digest, a size, in one receipt entry
LISTING_BUDGET = DEFAULT_MAX_MESSAGE // 2  # the rest of the receipt is small; leave a wide margin


@dataclass(frozen=True)
class Survey:
    files: int  # regular files seen (stops at max_files + 1)
    bytes: int  # their total size
    listing: int  # what their entries take in a receipt, about
    complete: bool  # False: the walk stopped early, there are more


def survey_outputs(root: Path, max_files: int) -> Survey:
    """Count the regular files under `root` (never following links), up to `max_files + 1` of them."""
    files = size = listing = 0
    if not root.is_dir():
        return Survey(0, 0, 0, True)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in filenames:
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
            except OSError:
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            files += 1
            size += st.st_size
            rel = os.path.relpath(full, root)
            listing += ENTRY_OVERHEAD + 2 * len(rel.encode(errors="surrogateescape"))  # path and name
            if files > max_files:
                return Survey(files, size, listing, False)
    return Survey(files, size, listing, True)


def check_outputs(survey: Survey, *, max_files: int, disk: int) -> None:
    """`task_output_limit` or `task_disk_limit` when the outputs cannot be signed for or exceed the disk."""
    limit = min(max_files, WIRE_MAX_OUTPUTS)
    if survey.files > limit or survey.listing > LISTING_BUDGET:
        more = "more than " if not survey.complete else ""
        raise AgoraError(
            "task_output_limit",
            f"the task wrote {more}{survey.files} output files (this node signs for at most {limit} per task, "
            f"in a listing of at most {LISTING_BUDGET} bytes); none were collected",
            details={"files": survey.files, "max_files": limit, "complete": survey.complete},
        )
    if survey.bytes > disk:
        raise AgoraError(
            "task_disk_limit",
            f"the outputs take {survey.bytes} bytes, more than the task's disk ({disk} bytes); none were collected",
        )


__all__ = ["LISTING_BUDGET", "Survey", "check_outputs", "survey_outputs"]
