/**
 * Stand-in for Exchange Online client submission (smtp.office365.com:587), on smtp-server:
 *   - STARTTLS offered; AUTH only after TLS, and only XOAUTH2 (smtp-server decodes the SASL string
 *     base64("user=" + mailbox + ^A + "auth=Bearer " + token + ^A^A), inline or after a 334);
 *   - the token must be valid and unexpired (signature, exp, audience https://outlook.office365.com
 *     or https://outlook.office.com, this tenant), carry SMTP.SendAsApp (app) or SMTP.Send (delegated),
 *     and its app/user must hold FullAccess on the mailbox in user= (or be that user) — or, for an
 *     app with no permission in its token, an RBAC "Application SMTP.SendAsApp" scope holding it: else
 *     `535 5.7.3 Authentication unsuccessful`; `smtpAuthDisabled` gives `535 5.7.139 …`;
 *   - MAIL FROM before AUTH: `530 5.7.57`; a MAIL FROM or From header other than the mailbox or an
 *     address it has Send As on: `550 5.7.60 SMTP; Client does not have permissions to send as this sender`;
 *     the null sender `MAIL FROM:<>` too (client submission sends only as a mailbox; Microsoft
 *     documents no null reverse-path, research m365-quotas-ndr.md §5), so a relay's NDR must go out
 *     as the mailbox;
 *   - `refuseRcpt` refuses chosen recipients at RCPT TO (a bounce by the final upstream);
 *   - with `sessionLimit: 3`, at most 3 simultaneous authenticated sessions per mailbox: a 4th gets
 *     `432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded` at MAIL FROM, as Exchange
 *     answers every connection over the limit (smtp-submission-improvements).
 * Also a plain MX stand-in for connector mode (no AUTH, STARTTLS, optional client certificate).
 */
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { simpleParser } from 'mailparser';
import type { TLSSocket } from 'node:tls';
import { verifyAccessToken } from './identity.ts';
import type { Pem } from './pki.ts';

export interface Received {
  user?: string;
  mailFrom: string;
  rcptTo: string[];
  from?: string;
  raw: Buffer;
  clientCertCN?: string;
  tls?: boolean;
}

export interface SmtpStandIn {
  port: number;
  received: Received[];
  /** Log of auth results ("235" or the refusal). */
  auths: string[];
  /** FullAccess: who (appid or upn) may authenticate as which mailbox. */
  fullAccess: Map<string, string[]>;
  /** RBAC for Applications: appid → mailboxes in the management scope of its "Application SMTP.SendAsApp" role. */
  rbac: Map<string, string[]>;
  /** Send As: mailbox → extra From addresses. */
  sendAs: Map<string, string[]>;
  smtpAuthDisabled: boolean;
  /** Reply given after DATA instead of 250 (e.g. '550 5.7.64 TenantAttribution; Relay Access Denied'). */
  rejectData?: string;
  /** Recipient → reply refusing it at RCPT TO (e.g. '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup'). */
  refuseRcpt: Map<string, string>;
  /** MAIL FROM commands refused (null sender or not sendable), as "<address> reply". */
  refusedSenders: string[];
  /** Most simultaneous authenticated sessions seen per mailbox, and how many got `432 4.3.2` for going over the limit. */
  maxSessions: Map<string, number>;
  refusedConnections: number;
  /**
   * Exchange's simultaneous sessions per mailbox (3), when set: the sessions past it get `432 4.3.2`.
   * Off by default because the relays of earlier cases in a file keep their idle pooled sessions open.
   */
  sessionLimit?: number;
  close(): Promise<void>;
}

const SEND_AS = 'SMTP; Client does not have permissions to send as this sender';

function smtpError(reply: string): Error {
  const m = /^(\d{3}) (.*)$/.exec(reply)!;
  return Object.assign(new Error(m[2]), { responseCode: Number(m[1]) });
}

export async function startExchangeSmtp(tls: Pem, idp: { signingKey: string; tenantId: string }): Promise<SmtpStandIn> {
  const state: SmtpStandIn = { port: 0, received: [], auths: [], fullAccess: new Map(), rbac: new Map(), sendAs: new Map(), smtpAuthDisabled: false, refuseRcpt: new Map(), refusedSenders: [], maxSessions: new Map(), refusedConnections: 0, close: async () => {} };
  const active = new Map<string, number>();
  const counted = new Map<string, string>();
  const server = new SMTPServer({
    key: tls.key, cert: tls.cert, logger: false, authMethods: ['XOAUTH2'], size: 36 * 1024 * 1024,
    onClose(session) {
      const mailbox = counted.get(session.id);
      if (mailbox) { counted.delete(session.id); active.set(mailbox, (active.get(mailbox) ?? 1) - 1); }
    },
    banner: 'Microsoft ESMTP MAIL Service ready (stand-in)',
    onAuth(auth, _session, cb) {
      if (auth.method !== 'XOAUTH2' || !auth.accessToken) return cb(smtpError('504 5.7.4 Unrecognized authentication type'));
      if (state.smtpAuthDisabled) { state.auths.push('5.7.139'); return cb(smtpError('535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [standin.prod.outlook.com]')); }
      const v = verifyAccessToken(idp, auth.accessToken, ['https://outlook.office365.com', 'https://outlook.office.com']);
      const mailbox = (auth.username ?? '').toLowerCase();
      const claims = v.ok ? v.claims : undefined;
      const who = String(claims?.upn ?? claims?.appid ?? '');
      // Two app-only set-ups: the SMTP.SendAsApp permission + FullAccess on the mailbox, or (RBAC, no
      // permission in the token) the role assignment's management scope holding the mailbox.
      const roles = Array.isArray(claims?.roles) ? claims.roles as string[] : [];
      const inRbacScope = Boolean(claims) && roles.length === 0 && (state.rbac.get(who) ?? []).includes(mailbox);
      const permitted = claims && (roles.includes('SMTP.SendAsApp') || String(claims.scp ?? '').split(' ').includes('SMTP.Send') || inRbacScope);
      const mailboxOk = claims && (inRbacScope || who.toLowerCase() === mailbox || (state.fullAccess.get(who) ?? []).includes(mailbox));
      if (!v.ok || !permitted || !mailboxOk) {
        state.auths.push(`5.7.3 ${v.ok ? (permitted ? 'no FullAccess' : 'no permission') : v.reason}`);
        return cb(smtpError('535 5.7.3 Authentication unsuccessful [standin.prod.outlook.com]'));
      }
      state.auths.push('235');
      if (!counted.has(_session.id)) {
        counted.set(_session.id, mailbox);
        const n = (active.get(mailbox) ?? 0) + 1;
        active.set(mailbox, n);
        state.maxSessions.set(mailbox, Math.max(state.maxSessions.get(mailbox) ?? 0, n));
      }
      cb(null, { user: mailbox });
    },
    onMailFrom(address, session, cb) {
      if (!session.user) return cb(smtpError('530 5.7.57 Client not authenticated to send mail. [standin.prod.outlook.com]'));
      const user = String(session.user);
      // sessions are counted in arrival order: those past the third are refused while the others last
      if (state.sessionLimit !== undefined && [...counted].filter(([, m]) => m === user).findIndex(([id]) => id === session.id) >= state.sessionLimit) {
        state.refusedConnections++;
        return cb(smtpError('432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded [standin.prod.outlook.com]'));
      }
      const from = (address.address ?? '').toLowerCase();
      if (!from || ![user, ...(state.sendAs.get(user) ?? [])].includes(from)) {
        state.refusedSenders.push(`<${from}> 550 5.7.60`);
        return cb(smtpError(`550 5.7.60 ${SEND_AS}`));
      }
      cb();
    },
    onRcptTo(address, _session, cb) {
      const refusal = state.refuseRcpt.get(address.address.toLowerCase());
      if (refusal) return cb(smtpError(refusal));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks);
        if (state.rejectData) return cb(smtpError(state.rejectData));
        simpleParser(raw).then((m) => {
          const user = String(session.user);
          const from = m.from?.value[0]?.address?.toLowerCase();
          if (from && ![user, ...(state.sendAs.get(user) ?? [])].includes(from)) return cb(smtpError(`550 5.7.60 ${SEND_AS}`));
          state.received.push({ user, mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rcptTo: session.envelope.rcptTo.map((r) => r.address), from, raw });
          cb();
        }, cb);
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.server.address() as { port: number }).port;
  state.close = () => new Promise((r) => server.close(() => r()));
  return state;
}

/** A tenant MX endpoint for connector mode: anonymous, STARTTLS, optionally asking for a client certificate. */
/**
 * An Exchange Online MX endpoint (connector route). Faults for the relay's "possible duplicate"
 * judgement: `dropAfterDot` takes the whole message, then closes the connection without a reply;
 * `stallData` stops reading in the middle of DATA (the client cannot finish writing a large message).
 */
export async function startMxStandIn(tls: Pem, opts: { requestCert?: boolean; trust?: string[]; noStartTls?: boolean; rejectData?: string; dropAfterDot?: boolean; stallData?: boolean; size?: number } = {}): Promise<SmtpStandIn> {
  const state: SmtpStandIn = { port: 0, received: [], auths: [], fullAccess: new Map(), rbac: new Map(), sendAs: new Map(), smtpAuthDisabled: false, rejectData: opts.rejectData, refuseRcpt: new Map(), refusedSenders: [], maxSessions: new Map(), refusedConnections: 0, close: async () => {} };
  // smtp-server hands hooks the session, not the socket: keep the TLS socket of each session at upgrade.
  const sockets = new Map<string, TLSSocket>();
  const server = new SMTPServer({
    key: tls.key, cert: tls.cert, logger: false, authOptional: true, disabledCommands: opts.noStartTls ? ['AUTH', 'STARTTLS'] : ['AUTH'],
    banner: 'Microsoft ESMTP MAIL Service ready (MX stand-in)', size: opts.size,
    requestCert: opts.requestCert, rejectUnauthorized: false, ca: opts.trust,
    onSecure(socket, session, cb) { sockets.set(session.id, socket as TLSSocket); cb(); },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      if (opts.stallData) {
        // Take the first chunk, then nothing: smtp-server stops reading the socket once the
        // paused stream is full, and the client's writes back up.
        stream.once('data', (c: Buffer) => { chunks.push(c); stream.pause(); });
        return;
      }
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        if (state.rejectData) return cb(smtpError(state.rejectData));
        const sock = sockets.get(session.id);
        if (opts.dropAfterDot) {
          state.received.push({ mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rcptTo: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks), tls: Boolean(sock) });
          sock?.destroy();
          return;
        }
        // Only a certificate that chains to the trusted list counts, as for a certificate-based connector.
        const cn = sock && sock.authorized ? certCN(sock) : undefined;
        state.received.push({ mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', rcptTo: session.envelope.rcptTo.map((r) => r.address), raw: Buffer.concat(chunks), clientCertCN: cn, tls: Boolean(sock) });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.server.address() as { port: number }).port;
  state.close = () => {
    // a stalled session never reads the client's close; without this, server.close() waits 30 s for it
    if (opts.stallData) for (const sock of sockets.values()) sock.destroy();
    return new Promise((r) => server.close(() => r()));
  };
  return state;
}

function certCN(sock: TLSSocket | undefined): string | undefined {
  const cert = sock?.getPeerCertificate();
  return cert && cert.subject ? String(cert.subject.CN) : undefined;
}
