/**
 * Microsoft Graph transport (graph://TENANT/MAILBOX): POST /v1.0/users/{mailbox}/sendMail with the
 * whole message as base64 MIME (Content-Type: text/plain).
 *
 * What a result means:
 *   202           accepted by Microsoft, *queued* there, not delivered: action 'relayed', 2.0.0; late
 *                 failures arrive as NDRs in the mailbox's Inbox. A MIME send always keeps a copy in
 *                 the mailbox's Sent Items (Graph has no saveToSentItems for MIME).
 *   > 4 MB        the request limit: draft (POST /messages, MIME without attachments) + attachments
 *                 (small ones posted, 3 MB+ through an upload session in 320 KiB-multiple chunks) +
 *                 POST /messages/{id}/send. Needs Mail.ReadWrite besides Mail.Send: said plainly when
 *                 refused. With graph.largeMessages: refuse, such a message fails with that reason.
 *   429/503/504   'delayed' with retryAfterMs from Retry-After.
 *   401/403, unknown mailbox, token refused
 *                 routeBroken: the delivery manager parks the upstream, messages wait (never bounced).
 * Envelope wins over headers: see ./graph-mime.ts. Never throws for Graph-level failures.
 */
import path from 'node:path';
import type { Outcome, OutboundMessage, Transport } from '../core/types.ts';
import type { Logger } from '../core/logger.ts';
import { sanitizeText } from '../core/errors.ts';
import type { UpstreamConfig } from '../config/sections/upstreams.ts';
import { createFetch, requestMayHaveArrived, type FetchLike } from '../m365/http.ts';
import { explainM365, formatExplanation } from '../m365/errors.ts';
import { TokenError, type TokenProvider } from '../m365/tokens.ts';
import { GRAPH_MAILBOX_CONCURRENCY, RequestSlots } from '../m365/graph-concurrency.ts';
import { reconcileRecipients, splitAttachments } from './graph-mime.ts';

export interface GraphDeps {
  logger: Logger;
  tokenProvider: TokenProvider;
  fetch?: FetchLike;
  now?: () => number;
  /** Folder a relative `ca` path is resolved against (the config file's); default: cwd. */
  configDir?: string;
  /**
   * Request slots shared by every graph:// upstream of the same app and mailbox (Outlook allows 4
   * concurrent requests per app per mailbox: src/m365/graph-concurrency.ts); default: 4 of its own.
   */
  slots?: { acquire(): Promise<() => void> };
}

/** Attachments below this go in one JSON request; from here on, an upload session (Microsoft: 3 MB). */
const SMALL_ATTACHMENT = 3_000_000;
/** Upload chunk: a multiple of 320 KiB, as the upload session requires, under the 4 MB request limit. */
const CHUNK = 10 * 320 * 1024;

/** No answer to a request (refused connection, timeout, reset); `mayHaveArrived`: it had been sent whole. */
class GraphUnanswered extends Error {
  readonly step: string;
  readonly mayHaveArrived: boolean;
  constructor(step: string, cause: unknown) {
    super((cause as Error)?.message ?? String(cause), { cause });
    this.step = step;
    this.mayHaveArrived = requestMayHaveArrived(cause);
  }
}

/** The requests after which Microsoft sends the message: an unanswered one may have sent it. */
const SENDING_STEPS = new Set(['sendMail', 'send draft']);

/** A Graph call that did not succeed, with what the outcome should say. */
class GraphFailure extends Error {
  readonly status: number;
  readonly code: string;
  readonly retryAfterMs?: number;
  readonly step: string;
  constructor(status: number, code: string, message: string, retryAfterMs?: number, step = 'sendMail') {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
    this.step = step;
  }
}

export function createGraphTransport(upstream: UpstreamConfig, deps: GraphDeps): Transport {
  const mailbox = decodeURIComponent(/^graph:\/\/[^/]+\/(.+)$/.exec(upstream.url)?.[1] ?? upstream.mailbox ?? '');
  const settings = upstream.graph ?? { base: 'https://graph.microsoft.com', largeMessages: 'upload' as const, maxRequestSize: 4 * 1024 * 1024 };
  // graph.base may be given as the host (https://graph.microsoft.com) or with the version (…/v1.0)
  const base = `${settings.base.replace(/\/+$/, '').replace(/\/v1\.0$/i, '')}/v1.0/users/${encodeURIComponent(mailbox)}`;
  const unlimited = deps.fetch ?? createFetch({ caFile: upstream.ca ? path.resolve(deps.configDir ?? '', upstream.ca) : undefined, verify: upstream.verifyCertificate, timeoutMs: upstream.timeout * 1000 });
  const slots = deps.slots ?? new RequestSlots(Math.min(GRAPH_MAILBOX_CONCURRENCY, upstream.maxConnections));
  // every request to the mailbox holds one of the app's slots until its answer is in
  const fetchLike: FetchLike = async (url, init) => {
    const release = await slots.acquire();
    try {
      return await unlimited(url, init);
    } finally {
      release();
    }
  };
  const now = deps.now ?? Date.now;
  const remoteMta = new URL(settings.base).host;

  /** One authorised Graph call; a 401 gets one retry with a fresh token, then it is the route's problem. */
  async function call(method: string, path: string, body: string | Buffer | undefined, contentType: string | undefined, step: string): Promise<Response> {
    for (let attempt = 0; ; attempt++) {
      const token = await deps.tokenProvider.getToken();
      const headers: Record<string, string> = { authorization: `Bearer ${token}` };
      if (contentType) headers['content-type'] = contentType;
      let res: Response;
      try {
        res = await fetchLike(`${base}${path}`, { method, headers, body: body ?? '' });
      } catch (e) {
        throw new GraphUnanswered(step, e);
      }
      if (res.ok) return res;
      if (res.status === 401 && attempt === 0) { deps.tokenProvider.invalidate(); continue; }
      throw await failureOf(res, step);
    }
  }

  async function sendWhole(mime: Buffer): Promise<void> {
    await call('POST', '/sendMail', mime.toString('base64'), 'text/plain', 'sendMail');
  }

  async function sendByDraft(mime: Buffer): Promise<void> {
    const split = await splitAttachments(mime);
    const draftBody = split.draft.toString('base64');
    if (draftBody.length > settings.maxRequestSize) throw new GraphFailure(413, 'ErrorMessageSizeExceeded', 'the message text alone (without attachments) is over the 4 MB Graph request limit', undefined, 'draft');
    const draft = (await (await call('POST', '/messages', draftBody, 'text/plain', 'draft (needs Mail.ReadWrite)')).json()) as { id: string };
    const id = encodeURIComponent(draft.id);
    try {
      for (const a of split.attachments) {
        if (a.content.length < SMALL_ATTACHMENT) {
          await call('POST', `/messages/${id}/attachments`, JSON.stringify({ '@odata.type': '#microsoft.graph.fileAttachment', name: a.name, contentType: a.contentType, contentBytes: a.content.toString('base64'), isInline: a.inline, contentId: a.contentId }), 'application/json', 'attachment (needs Mail.ReadWrite)');
        } else {
          await uploadLarge(id, a);
        }
      }
      await call('POST', `/messages/${id}/send`, undefined, undefined, 'send draft');
    } catch (e) {
      // Leave no half-built draft in the mailbox; the next attempt starts over. Not after a send
      // that may have gone through: the draft is then the sent message (in Sent Items).
      const maybeSent = e instanceof GraphUnanswered && e.mayHaveArrived && SENDING_STEPS.has(e.step);
      if (!maybeSent) await call('DELETE', `/messages/${id}`, undefined, undefined, 'delete draft').catch(() => undefined);
      throw e;
    }
  }

  async function uploadLarge(id: string, a: { name: string; contentType: string; content: Buffer; contentId?: string; inline: boolean }): Promise<void> {
    const session = (await (await call('POST', `/messages/${id}/attachments/createUploadSession`, JSON.stringify({ AttachmentItem: { attachmentType: 'file', name: a.name, size: a.content.length, contentType: a.contentType, isInline: a.inline, contentId: a.contentId } }), 'application/json', 'upload session (needs Mail.ReadWrite)')).json()) as { uploadUrl: string };
    for (let start = 0; start < a.content.length; start += CHUNK) {
      const chunk = a.content.subarray(start, Math.min(a.content.length, start + CHUNK));
      // The upload URL is pre-authenticated: Microsoft refuses an Authorization header there.
      const res = await fetchLike(session.uploadUrl, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'content-range': `bytes ${start}-${start + chunk.length - 1}/${a.content.length}` }, body: chunk });
      if (!res.ok) throw await failureOf(res, `upload of ${a.name}`);
    }
  }

  function outcomes(recipients: string[], o: Omit<Outcome, 'recipient' | 'transport' | 'at' | 'remoteMta'>): Outcome[] {
    const at = new Date(now()).toISOString();
    return recipients.map((recipient) => ({ recipient, transport: 'graph', remoteMta, at, ...o }));
  }

  function failed(recipients: string[], e: unknown): Outcome[] {
    if (e instanceof TokenError) {
      return outcomes(recipients, { action: 'delayed', status: '4.7.0', diagnostic: sanitizeText(e.message), reason: e.message, routeBroken: e.routeBroken });
    }
    if (!(e instanceof GraphFailure)) {
      const text = sanitizeText((e as Error)?.message ?? String(e));
      if (e instanceof GraphUnanswered && e.mayHaveArrived && SENDING_STEPS.has(e.step)) {
        return outcomes(recipients, { action: 'delayed', status: '4.4.1', diagnostic: text, possibleDuplicate: true, reason: `Microsoft Graph did not answer after receiving the whole ${e.step} request (${text}): Microsoft may have sent the message already; it is retried and may arrive twice.` });
      }
      if (e instanceof GraphUnanswered && e.mayHaveArrived) {
        return outcomes(recipients, { action: 'delayed', status: '4.4.1', diagnostic: text, reason: `Microsoft Graph did not answer the ${e.step} request (${text}); the message was not sent and stays in the queue to be retried.` });
      }
      return outcomes(recipients, { action: 'delayed', status: '4.4.1', diagnostic: text, reason: `Microsoft Graph could not be reached (${text}); the message stays in the queue and is retried.` });
    }
    const diagnostic = sanitizeText(`HTTP ${e.status} ${e.code}: ${e.message} (${e.step})`);
    const known = explainM365(e.status, undefined, `${e.code} ${e.message}`);
    const permissionForLarge = e.status === 403 && /Mail\.ReadWrite/.test(e.step);
    const reason = permissionForLarge
      ? `This message is over Graph's 4 MB request limit; sending it needs the application permission Mail.ReadWrite (draft + upload), which the app does not have. Grant Mail.ReadWrite with admin consent, or set graph.largeMessages: refuse. (${diagnostic})`
      : known ? formatExplanation(known) : `Microsoft Graph answered ${diagnostic}.`;
    if (e.status === 429 || e.status === 503 || e.status === 504 || (e.status >= 500 && !known)) {
      return outcomes(recipients, { action: 'delayed', status: '4.7.0', replyCode: e.status, diagnostic, reason, retryAfterMs: e.retryAfterMs });
    }
    if (permissionForLarge || known?.routeBroken || e.status === 401) {
      return outcomes(recipients, { action: 'delayed', status: '4.7.0', replyCode: e.status, diagnostic, reason, routeBroken: true });
    }
    const status = e.code === 'ErrorSendAsDenied' ? '5.7.60' : e.status === 413 || /Size/.test(e.code) ? '5.3.4' : /Mime/.test(e.code) ? '5.6.0' : '5.0.0';
    return outcomes(recipients, { action: 'failed', status, replyCode: e.status, diagnostic, reason });
  }

  return {
    kind: 'graph',
    name: upstream.name,
    async send(message: OutboundMessage): Promise<Outcome[]> {
      const recipients = [...message.recipients];
      try {
        const prepared = reconcileRecipients(await message.read(), recipients);
        if (prepared.removed.length) deps.logger.info({ id: message.id, upstream: upstream.name, removed: prepared.removed }, 'header recipients not in the envelope removed before Graph send');
        const large = Math.ceil(prepared.message.length / 3) * 4 > settings.maxRequestSize;
        if (large && settings.largeMessages === 'refuse') {
          return outcomes(recipients, { action: 'failed', status: '5.3.4', diagnostic: `message of ${prepared.message.length} bytes is over the Graph request limit`, reason: `The message (${Math.round(prepared.message.length / 1024)} KB, ${Math.round(Math.ceil(prepared.message.length / 3) * 4 / 1024)} KB as base64) is over Microsoft Graph's 4 MB request limit and graph.largeMessages is refuse. Set graph.largeMessages: upload and grant Mail.ReadWrite, or send it through an SMTP upstream.` });
        }
        if (large) await sendByDraft(prepared.message);
        else await sendWhole(prepared.message);
        return outcomes(recipients, { action: 'relayed', status: '2.0.0', replyCode: 202, diagnostic: `202 Accepted by Microsoft Graph${large ? ' (draft + upload session)' : ''}: queued at Microsoft, not proof of delivery; a copy is in ${mailbox}'s Sent Items and any NDR goes to its Inbox` });
      } catch (e) {
        return failed(recipients, e);
      }
    },
    async verify() {
      try {
        await deps.tokenProvider.getToken();
        return { ok: true, detail: `token for Microsoft Graph obtained; mailbox ${mailbox}` };
      } catch (e) {
        return { ok: false, detail: (e as Error).message };
      }
    },
    async close() {},
  };
}

async function failureOf(res: Response, step: string): Promise<GraphFailure> {
  let code = `HTTP${res.status}`;
  let message = res.statusText || 'error';
  try {
    const body = (await res.json()) as { error?: { code?: string; message?: string } };
    code = body.error?.code ?? code;
    message = body.error?.message ?? message;
  } catch { /* not JSON: keep the status line */ }
  return new GraphFailure(res.status, code, message, retryAfterMs(res.headers.get('retry-after')), step);
}

/** Retry-After as seconds or an HTTP date, in ms. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const t = Date.parse(value);
  return Number.isFinite(t) ? Math.max(0, t - now) : undefined;
}
