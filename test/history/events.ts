// QueueEvent builders for history tests: literals, so each test reads as the mail's story.
import type { Outcome, QueueEvent } from '../../src/core/types.ts';

export function accepted(id: string, at: number, from: string, to: string[], extra: { subject?: string; client?: string; size?: number } = {}): QueueEvent {
  const iso = new Date(at).toISOString();
  return {
    type: 'accepted', id, at: iso,
    envelope: {
      mailFrom: from, recipients: to, receivedAt: iso, size: extra.size ?? 1234, subject: extra.subject,
      client: { address: extra.client ?? '192.0.2.10', source: 'smtp', helo: 'printer' },
    },
  };
}

export function attempt(id: string, at: number, outcomes: Partial<Outcome>[], upstream = 'o365'): QueueEvent {
  const iso = new Date(at).toISOString();
  return {
    type: 'attempt', id, at: iso, upstream, durationMs: 42,
    outcomes: outcomes.map((o) => ({ recipient: 'x@y', action: 'delivered', status: '2.0.0', transport: 'smtp', at: iso, ...o }) as Outcome),
  };
}

export function state(id: string, at: number, s: 'delivered' | 'deferred' | 'failed' | 'badmail' | 'deleted', reason?: string): QueueEvent {
  return { type: 'state', id, at: new Date(at).toISOString(), state: s, reason };
}
