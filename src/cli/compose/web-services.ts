/**
 * Builds the services the console needs (src/web/services.ts) from the running relay's parts:
 * the spool, the delivery manager's upstream board, history, the event bus and the config file.
 * Only this adapter knows both sides; the console never touches the spool folders itself.
 */
import { readdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { newQueueId } from '../../core/ids.ts';
import type { Logger } from '../../core/logger.ts';
import type { Envelope } from '../../core/types.ts';
import { checkConfigText } from '../../config/load.ts';
import { configFileOf, type Config } from '../../config/schema.ts';
import type { Spool, QueueEntry } from '../../queue/index.ts';
import type { HistoryStore } from '../../history/index.ts';
import type { TokenProvider } from '../../m365/tokens.ts';
import type { WebServices, QueueEntryView, BadmailEntry, UpstreamStatus, RefusalService, HealthProbes } from '../../web/services.ts';
import type { EventBus } from './events.ts';

export interface UpstreamBoard {
  status(): Array<{ name: string; state: 'ok' | 'failing' | 'parked'; reason?: string }>;
  release(name: string): boolean | Promise<boolean>;
  quotas?(): Array<{ key: string; upstreams: string[]; messagesLastMinute: number; maxMessagesPerMinute?: number; recipientsLast24h: number; maxRecipientsPerDay?: number; heldUntil?: number; reason?: string }>;
}

export interface WebServiceDeps {
  getConfig: () => Config;
  spool: Spool;
  history: HistoryStore;
  bus: EventBus;
  upstreams: UpstreamBoard;
  /** Token sources by upstream name (they change when a reload rebuilds the transports). */
  tokens: () => Map<string, TokenProvider>;
  logger: Logger;
  /** Re-reads and applies the config file (what SIGHUP does). */
  reload: () => Promise<{ restartNeeded: string[] }>;
  tlsCertificateDaysLeft?: () => number | undefined;
  diagnostics?: WebServices['diagnostics'];
  refusals?: RefusalService;
  /** Each SMTP listener's state, for /healthz. */
  listeners?: HealthProbes['listeners'];
  devices?: WebServices['devices'];
}

function view(e: QueueEntry): QueueEntryView {
  const r = e.record;
  const last = r.recipients.map((x) => x.lastOutcome).filter((o) => o !== undefined).at(-1);
  return {
    id: r.id,
    state: r.holdReason ? 'parked' : e.state === 'incoming' ? 'queued' : e.state,
    mailFrom: r.envelope.mailFrom,
    recipients: r.recipients.filter((x) => x.state === 'pending').map((x) => x.address),
    receivedAt: r.envelope.receivedAt,
    size: r.envelope.size,
    subject: r.envelope.subject,
    attempts: r.attempts,
    nextAttemptAt: r.nextAttemptAt ? new Date(r.nextAttemptAt).toISOString() : undefined,
    lastReason: r.holdReason ?? r.lastError ?? last?.reason ?? last?.diagnostic,
    upstream: r.envelope.upstream,
    route: [...new Set(r.recipients.map((x) => x.route).filter(Boolean))].join(',') || r.envelope.route,
  };
}

/** A badmail name as the console sends it back: no folders, no dots that climb. */
function safeName(name: string): string | undefined {
  return /^[A-Za-z0-9._-]+$/.test(name) && !name.startsWith('.') ? name : undefined;
}

export function buildWebServices(deps: WebServiceDeps): WebServices {
  const { spool } = deps;
  const badmailDir = spool.paths.folder('badmail');
  const pickupDir = spool.paths.folder('pickup');
  const find = async (id: string) => (await spool.list()).find((e) => e.record.id === id);
  const queueAgeMs = deps.getConfig().web.health.queueAge;
  const known = async (id: string) => (await find(id)) !== undefined;

  return {
    queue: {
      async list(filter) {
        const all = (await spool.list()).map(view);
        return filter?.state ? all.filter((e) => e.state === filter.state) : all;
      },
      async show(id) {
        if (!(await known(id))) return undefined;
        const d = await spool.show(id);
        return { ...view(d), envelope: d.record.envelope, outcomes: d.record.recipients.flatMap((x) => (x.lastOutcome ? [x.lastOutcome] : [])) };
      },
      async retry(id) {
        const entry = await find(id);
        if (!entry) return false;
        if (entry.state === 'hold') await spool.release(id);
        else await spool.retry(id);
        return true;
      },
      async delete(id) {
        if (!(await known(id))) return false;
        await spool.delete(id, 'deleted from the console');
        return true;
      },
      flush: () => spool.flush(),
      async readMessage(id) {
        return (await known(id)) ? spool.readMessage(id) : undefined;
      },
    },
    badmail: {
      async list() {
        const names = (await readdir(badmailDir).catch(() => [] as string[])).filter((n) => n.endsWith('.BAD'));
        const out: BadmailEntry[] = [];
        for (const n of names) {
          const name = n.slice(0, -4);
          const st = await stat(path.join(badmailDir, n)).catch(() => undefined);
          if (!st) continue;
          const bdr = await readFile(path.join(badmailDir, `${name}.BDR`), 'utf8').catch(() => '');
          const summary = bdr.split(/\r?\n/).find((l) => l.trim() !== '') ?? '(no reason file)';
          out.push({ name, at: st.mtime.toISOString(), size: st.size, summary });
        }
        return out.sort((a, b) => b.at.localeCompare(a.at));
      },
      async read(name) {
        const n = safeName(name);
        if (!n) return undefined;
        const reason = await readFile(path.join(badmailDir, `${n}.BDR`), 'utf8').catch(() => undefined);
        return reason === undefined ? undefined : { reason };
      },
      async retry(name) {
        const n = safeName(name);
        if (!n) return false;
        // The .BAD carries X-Sender/X-Receiver: the pickup folder resends it to the failed recipients.
        // The .BDR stays, renamed, so the history of the failure is not lost.
        try {
          await rename(path.join(badmailDir, `${n}.BAD`), path.join(pickupDir, `${n}.eml`));
        } catch {
          return false;
        }
        await rename(path.join(badmailDir, `${n}.BDR`), path.join(badmailDir, `${n}.BDR.resubmitted`)).catch(() => {});
        deps.logger.info({ badmail: n }, 'badmail message resubmitted through pickup/');
        return true;
      },
      async download(name) {
        const n = safeName(name);
        return n ? readFile(path.join(badmailDir, `${n}.BAD`)).catch(() => undefined) : undefined;
      },
    },
    history: deps.history,
    async sendTest(input) {
      // The seed's Email.txt test, from the browser: a plain message queued like any other.
      const config = deps.getConfig();
      const id = newQueueId();
      const date = new Date().toUTCString().replace(/GMT$/, '+0000');
      const text = [
        `From: ${input.from}`, `To: ${input.to}`, `Subject: ${input.subject}`, `Date: ${date}`,
        `Message-ID: <${id}@${config.hostnameResolved}>`, 'MIME-Version: 1.0', 'Content-Type: text/plain; charset=utf-8', '',
        input.body, '',
      ].join('\r\n');
      const content = Buffer.from(text, 'utf8');
      const envelope: Envelope = {
        mailFrom: input.from, recipients: [input.to], client: { address: '', source: 'test' },
        receivedAt: new Date().toISOString(), size: content.length, subject: input.subject, headerFrom: input.from,
      };
      return { id: await spool.enqueue(envelope, content) };
    },
    events: { subscribe: (l) => deps.bus.subscribe(l) },
    upstreams: {
      status() {
        const config = deps.getConfig();
        const board = new Map(deps.upstreams.status().map((s) => [s.name, s]));
        return config.upstreams.map((u): UpstreamStatus => {
          const s = board.get(u.name);
          const t = deps.tokens().get(u.name)?.expiresAt();
          return {
            name: u.name,
            kind: u.url.split('://')[0],
            state: s?.state ?? 'unknown',
            reason: s?.reason,
            tokenExpiresAt: t ? new Date(t).toISOString() : undefined,
          };
        });
      },
      release: async (name) => deps.upstreams.release(name),
      quotas: () => (deps.upstreams.quotas?.() ?? []).map(({ heldUntil, ...q }) => ({ ...q, resumesAt: heldUntil ? new Date(heldUntil).toISOString() : undefined })),
    },
    config: {
      current: () => deps.getConfig(),
      text: async () => {
        const src = deps.getConfig().source;
        return !configFileOf({ source: src }) ? '# running on the embedded defaults (no config file; SMARTHOST_* variables may set some keys)\n' : readFile(src, 'utf8');
      },
      source: deps.getConfig().source,
      validate: (text) => checkConfigText(text, deps.getConfig().source).errors,
      async apply(text) {
        const src = deps.getConfig().source;
        const problems = checkConfigText(text, src).errors;
        if (problems.length) return { ok: false, problems };
        if (!configFileOf({ source: src })) return { ok: false, message: 'smarthost runs on its embedded defaults: start it with --config FILE to edit the configuration here' };
        const tmp = `${src}.new`;
        await writeFile(tmp, text, { mode: 0o600 });
        await rename(tmp, src);
        const { restartNeeded } = await deps.reload();
        return { ok: true, message: restartNeeded.length ? `configuration saved and reloaded; restart smarthost to apply the changes to ${restartNeeded.join(', ')}` : 'configuration saved and reloaded' };
      },
    },
    diagnostics: deps.diagnostics,
    tlsCertificateDaysLeft: deps.tlsCertificateDaysLeft,
    refusals: deps.refusals,
    health: deps.listeners ? { spoolWritable: () => spool.probe(), listeners: deps.listeners } : undefined,
    // Read at start, as the rest of web: is (a reload says a restart is needed for it).
    queueAgeThresholdMs: () => queueAgeMs,
    devices: deps.devices,
  };
}
