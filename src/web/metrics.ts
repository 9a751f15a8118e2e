/**
 * Prometheus metrics, text exposition format 0.0.4, computed from the QueueEvents the relay emits
 * and from the services at scrape time (queue size, oldest message, upstream tokens, TLS).
 *
 * Counters count since this process started (Prometheus handles restarts). Per-recipient outcomes
 * are counted, as Postfix's logs count them: a message to three recipients delivered is three
 * `delivered`. Bounces carry the RFC 3463 class (5.1 … 5.7) and its meaning in words.
 * A service that fails at scrape time leaves its gauges out rather than failing the scrape.
 */
import type { QueueEvent } from '../core/types.ts';
import type { Clock } from '../core/clock.ts';
import type { WebServices } from './services.ts';

const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** RFC 3463 subject classes, so a dashboard can say "policy" rather than "5.7". */
const CLASS_NAMES: Record<string, string> = {
  '1': 'address', '2': 'mailbox', '3': 'mail_system', '4': 'network_routing', '5': 'protocol', '6': 'content', '7': 'security_policy',
};

export interface Metrics {
  observe(event: QueueEvent): void;
  render(services: WebServices): Promise<string>;
}

const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
const labels = (l: Record<string, string>): string => {
  const parts = Object.entries(l).map(([k, v]) => `${k}="${esc(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
};

class CounterSet {
  readonly values = new Map<string, number>();
  inc(l: Record<string, string> = {}, by = 1): void {
    const key = labels(l);
    this.values.set(key, (this.values.get(key) ?? 0) + by);
  }
}

export function createMetrics(clock: Clock): Metrics {
  const accepted = new CounterSet();
  const delivered = new CounterSet();
  const deferred = new CounterSet();
  const bounced = new CounterSet();
  const latency = new Map<string, { buckets: number[]; sum: number; count: number }>();

  function observeLatency(upstream: string, seconds: number): void {
    let h = latency.get(upstream);
    if (!h) latency.set(upstream, (h = { buckets: LATENCY_BUCKETS.map(() => 0), sum: 0, count: 0 }));
    LATENCY_BUCKETS.forEach((b, i) => {
      if (seconds <= b) h.buckets[i]++;
    });
    h.sum += seconds;
    h.count++;
  }

  return {
    observe(event) {
      if (event.type === 'accepted') accepted.inc({ source: event.envelope.client.source });
      if (event.type !== 'attempt') return;
      observeLatency(event.upstream, Math.max(0, event.durationMs) / 1000);
      // several tenants in one console: every per-upstream count also says its route (routing)
      const route = event.route ?? 'default';
      for (const o of event.outcomes) {
        if (o.action === 'delivered' || o.action === 'relayed') delivered.inc({ upstream: event.upstream, route });
        else if (o.action === 'delayed') deferred.inc({ upstream: event.upstream, route });
        else if (o.action === 'failed') {
          const m = /^(\d)\.(\d{1,3})\./.exec(o.status);
          bounced.inc({ class: m ? `${m[1]}.${m[2]}` : 'unknown', reason: (m && CLASS_NAMES[m[2]]) ?? 'other', route });
        }
      }
    },

    async render(services) {
      const out: string[] = [];
      const counter = (name: string, help: string, set: CounterSet, empty: Record<string, string> = {}): void => {
        out.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
        if (set.values.size === 0) out.push(`${name}${labels(empty)} 0`);
        for (const [l, v] of set.values) out.push(`${name}${l} ${v}`);
      };
      counter('smarthost_messages_accepted_total', 'Messages accepted into the spool.', accepted);
      counter('smarthost_recipients_delivered_total', 'Recipients the upstream accepted.', delivered);
      counter('smarthost_recipients_deferred_total', 'Recipient attempts that failed temporarily (will be retried).', deferred);
      counter('smarthost_recipients_bounced_total', 'Recipients failed permanently, by RFC 3463 class.', bounced);

      out.push('# HELP smarthost_upstream_latency_seconds Time of one delivery attempt to an upstream.', '# TYPE smarthost_upstream_latency_seconds histogram');
      for (const [upstream, h] of latency) {
        LATENCY_BUCKETS.forEach((b, i) => out.push(`smarthost_upstream_latency_seconds_bucket${labels({ upstream, le: String(b) })} ${h.buckets[i]}`));
        out.push(`smarthost_upstream_latency_seconds_bucket${labels({ upstream, le: '+Inf' })} ${h.count}`);
        out.push(`smarthost_upstream_latency_seconds_sum${labels({ upstream })} ${h.sum}`, `smarthost_upstream_latency_seconds_count${labels({ upstream })} ${h.count}`);
      }

      try {
        const entries = await services.queue.list();
        const oldest = entries.reduce((min, e) => Math.min(min, Date.parse(e.receivedAt) || Infinity), Infinity);
        const byState = new Map<string, number>();
        for (const e of entries) byState.set(String(e.state), (byState.get(String(e.state)) ?? 0) + 1);
        out.push('# HELP smarthost_queue_messages Messages in the spool, by state.', '# TYPE smarthost_queue_messages gauge');
        out.push(`smarthost_queue_messages${labels({ state: 'all' })} ${entries.length}`);
        for (const [state, n] of byState) out.push(`smarthost_queue_messages${labels({ state })} ${n}`);
        out.push('# HELP smarthost_queue_oldest_age_seconds Age of the oldest message in the spool (0 when empty).', '# TYPE smarthost_queue_oldest_age_seconds gauge');
        out.push(`smarthost_queue_oldest_age_seconds ${Number.isFinite(oldest) ? Math.max(0, (clock.now() - oldest) / 1000) : 0}`);
      } catch {
        // Queue unreadable at scrape time: leave the gauges out.
      }

      try {
        const ups = await services.upstreams.status();
        out.push('# HELP smarthost_upstream_up Whether an upstream is usable (1) or parked/failing (0).', '# TYPE smarthost_upstream_up gauge');
        for (const u of ups) out.push(`smarthost_upstream_up${labels({ upstream: u.name })} ${u.state === 'ok' ? 1 : 0}`);
        out.push('# HELP smarthost_token_renewals_total OAuth2 access tokens obtained.', '# TYPE smarthost_token_renewals_total counter');
        for (const u of ups) if (u.tokenRenewals !== undefined) out.push(`smarthost_token_renewals_total${labels({ upstream: u.name })} ${u.tokenRenewals}`);
        out.push('# HELP smarthost_token_expiry_seconds Seconds until the current access token expires.', '# TYPE smarthost_token_expiry_seconds gauge');
        for (const u of ups) if (u.tokenExpiresAt) out.push(`smarthost_token_expiry_seconds${labels({ upstream: u.name })} ${(Date.parse(u.tokenExpiresAt) - clock.now()) / 1000}`);
      } catch {
        // Upstream status unavailable: leave it out.
      }

      const days = services.tlsCertificateDaysLeft?.();
      if (days !== undefined) out.push('# HELP smarthost_tls_certificate_days_left Days until the listener certificate expires.', '# TYPE smarthost_tls_certificate_days_left gauge', `smarthost_tls_certificate_days_left ${days}`);

      // Refusals are counted by the relay's refusal log (cli/compose/refusals.ts), by reason.
      const refusals = services.refusals?.counts() ?? {};
      out.push('# HELP smarthost_refusals_total SMTP commands and connections the relay refused, by reason (connection-denied, relay-denied, auth-failed, …).', '# TYPE smarthost_refusals_total counter');
      const reasons = Object.entries(refusals);
      if (reasons.length === 0) out.push('smarthost_refusals_total 0');
      for (const [reason, n] of reasons) out.push(`smarthost_refusals_total${labels({ reason })} ${n}`);

      // The standard process metrics of Prometheus client libraries, under their usual names.
      const mem = process.memoryUsage();
      const cpu = process.cpuUsage();
      out.push('# HELP process_resident_memory_bytes Resident memory size in bytes.', '# TYPE process_resident_memory_bytes gauge', `process_resident_memory_bytes ${mem.rss}`);
      out.push('# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.', '# TYPE process_cpu_seconds_total counter', `process_cpu_seconds_total ${(cpu.user + cpu.system) / 1e6}`);
      out.push('# HELP process_start_time_seconds Start time of the process since unix epoch in seconds.', '# TYPE process_start_time_seconds gauge', `process_start_time_seconds ${Math.round((Date.now() - process.uptime() * 1000) / 1000)}`);
      out.push('# HELP nodejs_heap_size_used_bytes JavaScript heap in use, in bytes.', '# TYPE nodejs_heap_size_used_bytes gauge', `nodejs_heap_size_used_bytes ${mem.heapUsed}`);
      out.push('# HELP nodejs_heap_size_total_bytes JavaScript heap reserved, in bytes.', '# TYPE nodejs_heap_size_total_bytes gauge', `nodejs_heap_size_total_bytes ${mem.heapTotal}`);
      out.push('# HELP nodejs_external_memory_bytes Memory of C++ objects bound to JavaScript (buffers), in bytes.', '# TYPE nodejs_external_memory_bytes gauge', `nodejs_external_memory_bytes ${mem.external}`);

      const h = services.history.health();
      out.push('# HELP smarthost_history_pending_events History events waiting to be written.', '# TYPE smarthost_history_pending_events gauge', `smarthost_history_pending_events ${h.pending}`);
      out.push('# HELP smarthost_history_missed_events_total History events dropped while the store was down.', '# TYPE smarthost_history_missed_events_total counter', `smarthost_history_missed_events_total ${h.missed}`);
      return `${out.join('\n')}\n`;
    },
  };
}
