import { Gauge, type Registry } from 'prom-client';
import type { WorkloadStatus } from './host.js';

/** Per-workload gauges on the admin listener's /metrics, read from the host's status at scrape time. */
export function registerHostMetrics(registry: Registry, status: () => Record<string, WorkloadStatus>): void {
  const gauge = (name: string, help: string, pick: (s: WorkloadStatus) => number | undefined) =>
    new Gauge({
      name,
      help,
      labelNames: ['workload', 'kind'],
      registers: [registry],
      collect() {
        this.reset();
        for (const [workload, s] of Object.entries(status())) {
          const v = pick(s);
          if (v !== undefined) this.set({ workload, kind: s.kind }, v);
        }
      },
    });
  gauge('trellis_host_workload_up', '1 when the workload is ready', (s) => (s.state === 'ready' ? 1 : 0));
  gauge(
    'trellis_host_workload_cpu_seconds',
    'CPU time (a thread: busy event-loop time)',
    (s) => s.cpuSeconds,
  );
  gauge(
    'trellis_host_workload_event_loop_utilization',
    'event-loop utilisation, 0..1',
    (s) => s.eventLoopUtilization,
  );
  gauge(
    'trellis_host_workload_event_loop_delay_seconds',
    'mean event-loop delay over the last heartbeat',
    (s) => (s.eventLoopDelayMs === undefined ? undefined : s.eventLoopDelayMs / 1000),
  );
  gauge('trellis_host_workload_heap_bytes', 'JS heap used', (s) => s.heapBytes);
  gauge('trellis_host_workload_restarts', 'restarts since the host started', (s) => s.restarts);
  gauge('trellis_host_workload_handled', 'requests, messages, runs or tasks handled', (s) => s.handled);
  gauge('trellis_host_workload_errors', 'of those, failed ones', (s) => s.errors);
  gauge('trellis_host_workload_in_flight', 'requests, messages or tasks in progress', (s) => s.inFlight);
  gauge('trellis_host_workload_queue_depth', 'tasks waiting for a worker (task pools)', (s) => s.queueDepth);
}
