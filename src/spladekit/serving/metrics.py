"""Counters, gauges and histograms, written in the Prometheus text exposition format (version 0.0.4).

A small, thread-safe implementation (the encoder thread and the event loop both record): a metric has a name,
a help line, label names, and one value (or one set of histogram buckets) per combination of label values.
``render()`` writes every metric as ``# HELP`` / ``# TYPE`` lines followed by its samples; histograms write
cumulative ``_bucket{le="..."}`` samples (ending with ``le="+Inf"``), ``_sum`` and ``_count``.

Reference: https://prometheus.io/docs/instrumenting/exposition_formats/
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str], lock: threading.Lock) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self._lock = lock

    def _key(self, labels: dict[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.label_names):
            raise ValueError(f"{self.name} takes the labels {list(self.label_names)}, got {sorted(labels)}.")
        return tuple(str(labels[name]) for name in self.label_names)

    def _labels(self, key: tuple[str, ...], extra: tuple[tuple[str, str], ...] = ()) -> str:
        pairs = list(zip(self.label_names, key)) + list(extra)
        if not pairs:
            return ""
        return "{" + ",".join(f'{name}="{_escape(value)}"' for name, value in pairs) + "}"

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape(self.help)}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._values: dict[tuple[str, ...], float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        if amount < 0:
            raise ValueError(f"A counter only goes up; got an increment of {amount}.")
        key = self._key(labels)
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(self._key(labels), 0.0)

    def samples(self) -> list[str]:
        return [f"{self.name}{self._labels(key)} {_format_number(value)}" for key, value in sorted(self._values.items())]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._values: dict[tuple[str, ...], float] = {}

    def set(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        with self._lock:
            self._values[key] = float(value)

    def samples(self) -> list[str]:
        return [f"{self.name}{self._labels(key)} {_format_number(value)}" for key, value in sorted(self._values.items())]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str], lock: threading.Lock,
                 buckets: Sequence[float]) -> None:
        super().__init__(name, help_text, label_names, lock)
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"Histogram buckets must be distinct and increasing, got {list(buckets)}.")
        self.buckets = tuple(float(b) for b in buckets)
        # per label key: (counts per bucket, not cumulative, plus the +Inf overflow), sum
        self._series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = self._key(labels)
        slot = bisect.bisect_left(self.buckets, value)  # first bucket with value <= upper bound
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[slot] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(self._key(labels))
            return sum(series[0]) if series else 0

    def samples(self) -> list[str]:
        lines = []
        for key, (counts, total) in sorted(self._series.items()):
            cumulative = 0
            for bound, count in zip(self.buckets + (math.inf,), counts):
                cumulative += count
                le = (("le", _format_number(bound)),)
                lines.append(f"{self.name}_bucket{self._labels(key, le)} {cumulative}")
            lines.append(f"{self.name}_sum{self._labels(key)} {_format_number(total[0])}")
            lines.append(f"{self.name}_count{self._labels(key)} {cumulative}")
        return lines


class MetricsRegistry:
    """The metrics of one server, rendered together by :meth:`render`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._metrics: list[_Metric] = []

    def counter(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> Counter:
        return self._add(Counter(name, help_text, label_names, self._lock))

    def gauge(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> Gauge:
        return self._add(Gauge(name, help_text, label_names, self._lock))

    def histogram(self, name: str, help_text: str, label_names: Sequence[str] = (),
                  buckets: Sequence[float] = LATENCY_BUCKETS) -> Histogram:
        return self._add(Histogram(name, help_text, label_names, self._lock, buckets))

    def _add(self, metric):
        if any(m.name == metric.name for m in self._metrics):
            raise ValueError(f"A metric named {metric.name!r} is already registered.")
        self._metrics.append(metric)
        return metric

    def render(self) -> str:
        lines: list[str] = []
        with self._lock:
            for metric in self._metrics:
                lines += metric.header() + metric.samples()
        return "\n".join(lines) + "\n"


class ServerMetrics:
    """The metrics ``spladekit serve`` exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = MetricsRegistry()
        r = self.registry
        self.requests = r.counter("spladekit_requests_total", "HTTP requests answered, by endpoint and status code.",
                                  ("endpoint", "status"))
        self.latency = r.histogram("spladekit_request_duration_seconds",
                                   "Time from receiving a request to sending its response.", ("endpoint",))
        self.texts = r.counter("spladekit_encoded_texts_total", "Texts encoded, by task.", ("task",))
        self.batch_texts = r.histogram("spladekit_batch_size", "Texts per encoder batch.", buckets=SIZE_BUCKETS)
        self.batch_requests = r.histogram("spladekit_batch_requests", "Requests merged into one encoder batch.",
                                          buckets=SIZE_BUCKETS)
        self.queue_wait = r.histogram("spladekit_queue_wait_seconds",
                                      "Time a request waited before its encoder batch started.")
        self.encode_time = r.histogram("spladekit_encode_duration_seconds", "Time the encoder took per batch.")
        self.pending = r.gauge("spladekit_pending_requests", "Requests queued or being encoded.")
        self.pending.set(0)

    def render(self) -> str:
        return self.registry.render()
