// Console test doubles: an in-memory queue, badmail folder, upstream list and config file behind
// the WebServices interfaces, recording each call so tests can check what an action did (or that
// a refused action did nothing). History is the real one (SQLite in a temp folder).
import type { QueueEvent } from '../../src/core/types.ts';
import type { HistoryStore } from '../../src/history/types.ts';
import type { QueueEntryView, UpstreamStatus, WebServices } from '../../src/web/services.ts';

export interface Fakes {
  services: WebServices;
  calls: string[];
  queue: QueueEntryView[];
  emit(event: QueueEvent): void;
  applied: string[];
  configText: string;
}

export const SECRET = 'S3cret-upstream-pa55';

export function fakeServices(history: HistoryStore, over: Partial<WebServices> = {}): Fakes {
  const calls: string[] = [];
  const listeners = new Set<(e: QueueEvent) => void>();
  const applied: string[] = [];
  const queue: QueueEntryView[] = [
    { id: 'q1', state: 'deferred', mailFrom: 'scanner@office.example', recipients: ['alice@example.com'], receivedAt: new Date(Date.now() - 600_000).toISOString(), size: 100, lastReason: '421 4.4.1 upstream busy: we will try again' },
  ];
  const upstreams: UpstreamStatus[] = [{ name: 'o365', kind: 'smtp', state: 'parked', reason: 'authentication refused: SMTP AUTH is disabled for the mailbox', tokenExpiresAt: new Date(Date.now() + 3_600_000).toISOString(), tokenRenewals: 3 }];
  const fakes: Fakes = {
    calls, queue, applied,
    configText: `# relay config\nmailroot: ./mailroot\nupstreams:\n  - name: o365\n    url: smtp+starttls://smtp.office365.com:587\n    username: scanner@office.example\n    password: ${SECRET}\n`,
    emit: (e) => listeners.forEach((l) => l(e)),
    services: {
      queue: {
        list: async () => queue,
        show: async (id) => queue.find((m) => m.id === id),
        retry: async (id) => (calls.push(`retry ${id}`), queue.some((m) => m.id === id)),
        delete: async (id) => (calls.push(`delete ${id}`), queue.some((m) => m.id === id)),
        flush: async () => (calls.push('flush'), queue.length),
        readMessage: async (id) => (queue.some((m) => m.id === id) ? Buffer.from('Subject: hi\r\n\r\nbody\r\n') : undefined),
      },
      badmail: {
        list: async () => [{ name: 'm9', at: new Date().toISOString(), size: 10, summary: 'carol@example.com: 550 5.7.1 Client does not have permissions to send as this sender' }],
        read: async (name) => (name === 'm9' ? { reason: 'Recipient: carol@example.com\nWhat it means: the mailbox needs Send As\n' } : undefined),
        retry: async (name) => (calls.push(`badmail retry ${name}`), name === 'm9'),
        download: async (name) => (name === 'm9' ? Buffer.from('Subject: bad\r\n\r\nx\r\n') : undefined),
      },
      history,
      sendTest: async (input) => (calls.push(`send ${input.from} -> ${input.to}: ${input.subject}`), { id: 't1' }),
      events: { subscribe: (l) => (listeners.add(l), () => listeners.delete(l)) },
      upstreams: { status: () => upstreams, release: async (name) => (calls.push(`release ${name}`), name === 'o365') },
      config: {
        current: () => ({ upstreams: [{ name: 'o365', password: SECRET }], web: { adminPassword: 'scrypt$x' } }),
        text: () => fakes.configText,
        source: 'smarthost.yaml',
        apply: async (text) => (applied.push(text), { ok: true, message: 'reloaded' }),
      },
      tlsCertificateDaysLeft: () => 42,
      ...over,
    },
  };
  return fakes;
}
