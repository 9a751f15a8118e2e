/**
 * The refusal log: what the inbound listener refused (src/inbound/types.ts Refusal), kept in memory
 * for the console's Refusals page (the last 500) and counted by reason for /metrics. Refusals are
 * also in each SMTP session's log line; this is the view that answers "why did my printer get an
 * error?" without the log. Since start only: a restart empties it, as it resets the counters.
 */
import type { Refusal } from '../../inbound/types.ts';
import type { RefusalService, RefusalView } from '../../web/services.ts';

const KEEP = 500;

export interface RefusalLog extends RefusalService {
  record(refusal: Refusal): void;
}

export function createRefusalLog(keep = KEEP): RefusalLog {
  const ring: RefusalView[] = [];
  const counts: Record<string, number> = {};
  const listeners = new Set<(r: RefusalView) => void>();
  return {
    record(r) {
      ring.push(r);
      if (ring.length > keep) ring.shift();
      counts[r.reason] = (counts[r.reason] ?? 0) + 1;
      for (const l of listeners) {
        try {
          l(r);
        } catch {
          // a console listener never disturbs the SMTP session
        }
      }
    },
    recent: (limit = keep) => ring.slice(-limit).reverse(),
    counts: () => ({ ...counts }),
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
