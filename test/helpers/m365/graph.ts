/**
 * Stand-in for Microsoft Graph's mail endpoints, on http loopback, as strict as the documented contract:
 *   POST /v1.0/users/{m}/sendMail                     Content-Type text/plain, body = base64 MIME → 202
 *   POST /v1.0/users/{m}/messages                     base64 MIME → 201 draft { id }      (Mail.ReadWrite)
 *   POST /v1.0/users/{m}/messages/{id}/attachments    fileAttachment JSON (< 3 MB) → 201  (Mail.ReadWrite)
 *   POST /v1.0/users/{m}/messages/{id}/attachments/createUploadSession → 201 { uploadUrl } (Mail.ReadWrite)
 *   PUT  {uploadUrl}                                  byte ranges, no Authorization header, chunks a
 *                                                     multiple of 320 KiB except the last → 200 … 201
 *   POST /v1.0/users/{m}/messages/{id}/send           → 202                               (Mail.Send)
 *   DELETE /v1.0/users/{m}/messages/{id}              → 204
 * Checks: bearer token (signature, expiry, audience https://graph.microsoft.com), the permission in
 * the token's roles/scp, the mailbox, the base64 MIME, the 4 MB request limit, the From address
 * (ErrorSendAsDenied unless the mailbox's own or granted). Recipients come from the MIME headers
 * (To/Cc/Bcc), as Graph does: there is no envelope. `throttle(n, seconds)` answers 429 + Retry-After.
 * Concurrency: requests in progress are counted per app (the token's appid) and mailbox, as Outlook
 * counts them; with `concurrencyLimit` set, one over it gets `429 ApplicationThrottled` "Application
 * is over its MailboxConcurrency limit." (Outlook allows 4). A request stops counting just before
 * its answer is written, so a client that sends its next request on an answer is never miscounted.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { simpleParser, type AddressObject } from 'mailparser';
import { verifyAccessToken } from './identity.ts';

export interface SentMessage {
  via: 'sendMail' | 'draft';
  mailbox: string;
  from?: string;
  sender?: string;
  to: string[];
  cc: string[];
  bcc: string[];
  subject?: string;
  text?: string;
  attachments: { name: string; size: number; sha256: string }[];
}

export interface GraphStandIn {
  base: string;
  sent: SentMessage[];
  requests: { method: string; path: string; status: number; bytes: number; at: number }[];
  /** Mailboxes that exist, with the From addresses each may send as (its own is implied). */
  mailboxes: Map<string, string[]>;
  /** Recipients Graph refuses (400 ErrorInvalidRecipients), for bounce tests. */
  refuseRecipients: Set<string>;
  throttle(times: number, retryAfterSeconds: number): void;
  /** Requests in progress over this per app + mailbox get 429 MailboxConcurrency (unset: no limit). */
  concurrencyLimit?: number;
  /** Most mailbox requests in progress at once, per "APPID MAILBOX". */
  peakConcurrency: Map<string, number>;
  /** Requests refused for going over concurrencyLimit. */
  concurrencyRefused: number;
  /**
   * The next this-many sending requests (sendMail, a draft's send) are carried out, then the
   * connection is closed without an answer: Microsoft took the message and the reply was lost.
   */
  dropAnswers?: number;
  /** When set, each counted request waits for it before being handled (tests hold requests open with it). */
  gate?: (key: string, inProgress: number) => Promise<void>;
  close(): Promise<void>;
}

const LIMIT = 4 * 1024 * 1024;
const CHUNK_UNIT = 320 * 1024;

interface Draft { mailbox: string; mime: Buffer; attachments: { name: string; data: Buffer }[] }
interface Upload { draftId: string; name: string; size: number; received: Buffer[]; next: number }

export async function startGraph(idp: { signingKey: string; tenantId: string }): Promise<GraphStandIn> {
  const drafts = new Map<string, Draft>();
  const inProgress = new Map<string, number>();
  const uploads = new Map<string, Upload>();
  let throttleLeft = 0;
  let throttleSeconds = 1;
  let base = '';
  const state: GraphStandIn = {
    base: '', sent: [], requests: [], mailboxes: new Map(), refuseRecipients: new Set(), peakConcurrency: new Map(), concurrencyRefused: 0,
    throttle(times, seconds) { throttleLeft = times; throttleSeconds = seconds; },
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };

  const error = (res: ServerResponse, status: number, code: string, message: string, headers: Record<string, string> = {}) =>
    json(res, status, { error: { code, message, innerError: { date: new Date().toISOString(), 'request-id': randomUUID(), 'client-request-id': randomUUID() } } }, headers);

  async function mimeBody(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<Buffer | undefined> {
    if (!String(req.headers['content-type'] ?? '').startsWith('text/plain')) { error(res, 415, 'ErrorUnsupportedContentType', 'This stand-in takes MIME content (Content-Type: text/plain) only.'); return undefined; }
    const text = body.toString('latin1').replace(/\r?\n/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text) || text.length % 4 !== 0) { error(res, 400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'); return undefined; }
    return Buffer.from(text, 'base64');
  }

  async function record(via: SentMessage['via'], mailbox: string, mime: Buffer, extra: { name: string; data: Buffer }[], res: ServerResponse): Promise<boolean> {
    const m = await simpleParser(mime);
    const list = (a: AddressObject | AddressObject[] | undefined) => (Array.isArray(a) ? a : a ? [a] : []).flatMap((x) => x.value.map((v) => (v.address ?? '').toLowerCase())).filter(Boolean);
    const to = list(m.to); const cc = list(m.cc); const bcc = list(m.bcc);
    if (to.length + cc.length + bcc.length === 0) { error(res, 400, 'ErrorInvalidRecipients', 'At least one recipient is required.'); return false; }
    const refused = [...to, ...cc, ...bcc].filter((r) => state.refuseRecipients.has(r));
    if (refused.length) { error(res, 400, 'ErrorInvalidRecipients', `The recipient ${refused[0]} is not valid.`); return false; }
    const from = m.from?.value[0]?.address?.toLowerCase();
    const allowed = [mailbox, ...(state.mailboxes.get(mailbox) ?? [])];
    if (from && !allowed.includes(from)) { error(res, 403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.'); return false; }
    const senderHeader = m.headers.get('sender') as { value?: { address?: string }[] } | undefined;
    state.sent.push({
      via, mailbox, from, to, cc, bcc, subject: m.subject, text: m.text, sender: senderHeader?.value?.[0]?.address,
      attachments: [...m.attachments.map((a) => ({ name: a.filename ?? '', data: a.content })), ...extra].map((a) => ({ name: a.name, size: a.data.length, sha256: createHash('sha256').update(a.data).digest('hex') })),
    });
    return true;
  }

  /** 202 for a message sent, or no answer at all while dropAnswers lasts. */
  function answerSent(req: IncomingMessage, res: ServerResponse): void {
    if (state.dropAnswers) {
      state.dropAnswers--;
      req.socket.destroy();
      return;
    }
    res.writeHead(202, { 'content-length': 0 });
    res.end();
  }

  async function handle(req: IncomingMessage, res: ServerResponse, body: Buffer): Promise<void> {
    const url = new URL(req.url ?? '/', base);
    const up = /^\/upload\/([A-Za-z0-9_-]+)$/.exec(url.pathname);
    if (up) return upload(req, res, body, up[1]);
    if (body.length > LIMIT) return error(res, 413, 'BadRequest', 'The maximum request length supported is 4MB.');
    if (throttleLeft > 0) { throttleLeft--; return error(res, 429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': String(throttleSeconds) }); }
    const auth = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
    if (!auth) return error(res, 401, 'InvalidAuthenticationToken', 'Access token is empty.');
    const v = verifyAccessToken(idp, auth[1], ['https://graph.microsoft.com', '00000003-0000-0000-c000-000000000000']);
    if (!v.ok) return error(res, 401, 'InvalidAuthenticationToken', v.reason.includes('expired') ? 'Lifetime validation failed, the token is expired.' : `Access token validation failure: ${v.reason}.`);
    const granted = [...(Array.isArray(v.claims.roles) ? v.claims.roles as string[] : []), ...String(v.claims.scp ?? '').split(' ')];
    const m = /^\/v1\.0\/users\/([^/]+)\/(sendMail|messages)(?:\/([^/]+)(?:\/(send|attachments)(?:\/(createUploadSession))?)?)?$/.exec(url.pathname);
    if (!m) return error(res, 400, 'BadRequest', `Resource not found for the segment '${url.pathname}'.`);
    const mailbox = decodeURIComponent(m[1]).toLowerCase();
    if (!state.mailboxes.has(mailbox)) return error(res, 404, 'ErrorInvalidUser', `The requested user '${mailbox}' is invalid.`);
    const [, , kind, draftId, sub, session] = m;
    const need = kind === 'sendMail' || sub === 'send' ? 'Mail.Send' : 'Mail.ReadWrite';
    if (!granted.includes(need)) return error(res, 403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.');
    const key = `${String(v.claims.appid ?? v.claims.azp ?? '')} ${mailbox}`;
    const now = (inProgress.get(key) ?? 0) + 1;
    if (state.concurrencyLimit !== undefined && now > state.concurrencyLimit) {
      state.concurrencyRefused++;
      return error(res, 429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'retry-after': '1' });
    }
    inProgress.set(key, now);
    state.peakConcurrency.set(key, Math.max(now, state.peakConcurrency.get(key) ?? 0));
    // the count drops in the same turn as the answer is written (no I/O can come in between)
    const done = () => inProgress.set(key, inProgress.get(key)! - 1);
    let answered = false;
    res.prependOnceListener('close', () => { if (!answered) { answered = true; done(); } });
    const writeHead = res.writeHead.bind(res);
    res.writeHead = ((...a: Parameters<typeof res.writeHead>) => { if (!answered) { answered = true; done(); } return writeHead(...a); }) as typeof res.writeHead;
    await state.gate?.(key, now);
    if (kind === 'sendMail' && req.method === 'POST') {
      const mime = await mimeBody(req, res, body);
      if (!mime) return;
      if (await record('sendMail', mailbox, mime, [], res)) answerSent(req, res);
      return;
    }
    if (kind === 'messages' && !draftId && req.method === 'POST') {
      const mime = await mimeBody(req, res, body);
      if (!mime) return;
      const id = randomBytes(12).toString('base64url');
      drafts.set(id, { mailbox, mime, attachments: [] });
      return json(res, 201, { id, isDraft: true });
    }
    const draft = draftId ? drafts.get(draftId) : undefined;
    if (!draft || draft.mailbox !== mailbox) return error(res, 404, 'ErrorItemNotFound', 'The specified object was not found in the store.');
    if (req.method === 'DELETE' && !sub) { drafts.delete(draftId!); res.writeHead(204); res.end(); return; }
    if (sub === 'attachments' && !session && req.method === 'POST') {
      const a = JSON.parse(body.toString('utf8')) as { '@odata.type'?: string; name?: string; contentBytes?: string };
      if (a['@odata.type'] !== '#microsoft.graph.fileAttachment' || !a.name || typeof a.contentBytes !== 'string') return error(res, 400, 'ErrorInvalidRequest', 'A fileAttachment needs name and contentBytes.');
      const data = Buffer.from(a.contentBytes, 'base64');
      if (data.length >= 3 * 1024 * 1024) return error(res, 413, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize', 'Attachments of 3 MB or more need an upload session.');
      draft.attachments.push({ name: a.name, data });
      return json(res, 201, { id: randomUUID(), name: a.name, size: data.length });
    }
    if (session && req.method === 'POST') {
      const item = (JSON.parse(body.toString('utf8')) as { AttachmentItem?: { attachmentType?: string; name?: string; size?: number } }).AttachmentItem;
      if (!item || item.attachmentType !== 'file' || !item.name || !Number.isInteger(item.size) || item.size! <= 0) return error(res, 400, 'ErrorInvalidRequest', 'AttachmentItem needs attachmentType file, name and size.');
      const token = randomBytes(16).toString('base64url');
      uploads.set(token, { draftId: draftId!, name: item.name, size: item.size!, received: [], next: 0 });
      return json(res, 201, { uploadUrl: `${base}/upload/${token}`, expirationDateTime: new Date(Date.now() + 3600_000).toISOString(), nextExpectedRanges: ['0-'] });
    }
    if (sub === 'send' && req.method === 'POST') {
      if (uploadsPending(draftId!)) return error(res, 400, 'ErrorInvalidRequest', 'An attachment upload is not finished.');
      if (await record('draft', mailbox, draft.mime, draft.attachments, res)) { drafts.delete(draftId!); answerSent(req, res); }
      return;
    }
    return error(res, 405, 'ErrorInvalidRequest', 'Method not allowed.');
  }

  function uploadsPending(draftId: string): boolean {
    return [...uploads.values()].some((u) => u.draftId === draftId && u.next < u.size);
  }

  function upload(req: IncomingMessage, res: ServerResponse, body: Buffer, token: string): void {
    const u = uploads.get(token);
    if (!u) return error(res, 404, 'ItemNotFound', 'The upload session was not found.');
    if (req.headers.authorization) return error(res, 401, 'InvalidAuthenticationToken', 'Do not send an Authorization header to the pre-authenticated upload URL.');
    if (req.method !== 'PUT') return error(res, 405, 'ErrorInvalidRequest', 'Use PUT.');
    const r = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
    if (!r) return error(res, 400, 'InvalidRange', 'Content-Range bytes START-END/TOTAL is required.');
    const [start, end, total] = [Number(r[1]), Number(r[2]), Number(r[3])];
    const last = end + 1 === u.size;
    if (total !== u.size || start !== u.next || end < start || body.length !== end - start + 1) return error(res, 416, 'InvalidRange', `Expected range ${u.next}- of ${u.size}.`);
    if (!last && body.length % CHUNK_UNIT !== 0) return error(res, 400, 'InvalidChunkSize', 'Each chunk except the last must be a multiple of 320 KiB.');
    if (body.length > 60 * 1024 * 1024) return error(res, 413, 'InvalidChunkSize', 'Chunks are limited to 60 MiB.');
    u.received.push(body);
    u.next = end + 1;
    if (!last) return json(res, 200, { expirationDateTime: new Date(Date.now() + 3600_000).toISOString(), nextExpectedRanges: [`${u.next}-`] });
    drafts.get(u.draftId)?.attachments.push({ name: u.name, data: Buffer.concat(u.received) });
    res.writeHead(201, { location: `${base}/v1.0/attachments/${randomUUID()}`, 'content-length': 0 });
    res.end();
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      res.on('finish', () => state.requests.push({ method: req.method ?? '', path: new URL(req.url ?? '/', base).pathname, status: res.statusCode, bytes: body.length, at: Date.now() }));
      handle(req, res, body).catch((e) => error(res, 500, 'InternalServerError', String(e)));
    });
  });
  // Graph answers large requests itself; Node's default header/body timeouts are fine on loopback.
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  state.base = base;
  return state;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}
