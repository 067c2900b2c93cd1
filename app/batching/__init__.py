"""Dynamic batching: items in, futures out.

The batcher knows only items with a token count and a future. It knows nothing of tasks, HTTP
or onnxruntime: an injected runner pads a batch (`pad`, cheap, on the event loop) and runs it
(`run`, in a runner thread), so the event loop never blocks on inference.

A batch closes when it is full (`max_batch_size` items, or `max_batch_tokens` padded tokens), or
when its oldest item has waited `max_delay_ms`; but the batcher waits for companions only when
waiting pays: while every runner thread is busy (the next batch fills up anyway), or when the
arrival rate it observes says a companion comes within the delay. A lone request on an idle model
runs at once. While a batch runs, the next one is formed and padded and waits in a hand-off slot;
a runner thread starts it the moment the current one ends, without a round trip through a busy
event loop. Items are grouped by length around the oldest one, within a padding budget
(`max_padding_ratio`), so batches pad little and nobody starves.

The parts, one job each:
    batcher.py     DynamicBatcher: admission of a request's items, awaiting them, lifecycle
    queue.py       PendingQueue: items sorted by length, admission limits, throughput, batch choice
    backlog.py     Backlog: the work queued for an engine that several models share (admission)
    scheduler.py   Scheduler: the batching loop (when to close a batch), batches in flight
    runners.py     RunnerPool: the runner threads and their hand-off queue
    delivery.py    Delivery: results and failures to futures, reports to the observer
    supervisor.py  Supervisor: a crashed loop or thread is reported and restarted after a backoff
    protocol.py    the errors, the runner, observer and trace protocols, the reports
"""

from app.batching.backlog import Backlog
from app.batching.batcher import DynamicBatcher
from app.batching.protocol import (
    BatcherClosed,
    BatchFailed,
    BatchObserver,
    BatchReport,
    BatchRunner,
    BatchShape,
    Completed,
    Component,
    DropReason,
    DropReport,
    NeverFits,
    PaddedArrays,
    Part,
    RunTrace,
)
from app.batching.queue import choose_window
from app.batching.scheduler import ArrivalRate

__all__ = [
    "ArrivalRate",
    "Backlog",
    "BatchFailed",
    "BatchObserver",
    "BatchReport",
    "BatchRunner",
    "BatchShape",
    "BatcherClosed",
    "Completed",
    "Component",
    "DropReason",
    "DropReport",
    "DynamicBatcher",
    "NeverFits",
    "PaddedArrays",
    "Part",
    "RunTrace",
    "choose_window",
]
