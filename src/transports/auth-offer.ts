/**
 * Configured credentials are used or the delivery fails: never silently dropped.
 *
 * nodemailer logs in only when the server's EHLO lists AUTH; to a server that offers none it sends
 * the mail unauthenticated, without a word (smtp-pool/pool-resource.js: `if (auth && (allowsAuth ||
 * forceAuth)) login …  else connected`). An upstream with a username/password that answers without
 * AUTH is a misconfiguration (wrong port, wrong host, AUTH offered only after STARTTLS) or a relay
 * that would take mail from anyone: Postfix refuses to send in that case with
 * smtp_sasl_auth_enforce = yes (its default), and so does smarthost.
 *
 * How: the transport sets `forceAuth` (so nodemailer always calls login) and `requireAuthOffer`; this
 * module wraps SMTPConnection.prototype.login once so that, for such a connection, a server whose
 * EHLO offers no AUTH, or not a mechanism the credentials can use, fails the login with an EAUTH
 * error before any credentials are sent. The error carries `authNotOffered`, a sentence for the
 * admin; the transport reports it as a credentials problem (the route is parked).
 */
import SMTPConnection from 'nodemailer/lib/smtp-connection';

/** Options this module reads from nodemailer's connection options. */
export interface AuthOfferOptions {
  /** Fail the login unless the server offers a mechanism the credentials can use. */
  requireAuthOffer?: boolean;
}

/** Mechanisms nodemailer can run with a username and password (smtp-connection's own list). */
const PASSWORD_MECHANISMS = ['PLAIN', 'LOGIN', 'CRAM-MD5'];

interface ConnectionState {
  options: AuthOfferOptions & { host?: string; port?: number; secure?: boolean; ignoreTLS?: boolean };
  /** true after an EHLO listing AUTH, and (nodemailer's guess) after a HELO fallback. */
  allowsAuth: boolean;
  _supportedAuth: string[];
  _ehloLines?: string[];
  secure: boolean;
  _formatError(message: string, type: string, response: string | false, command: string): Error;
}

interface AuthData {
  type?: string;
  oauth2?: unknown;
  method?: string;
}

type Login = (this: ConnectionState, auth: AuthData, callback: (err: Error | null, ok?: boolean) => void) => void;

/** The mechanisms the EHLO reply lists on its AUTH line(s), as the server wrote them. */
function offeredMechanisms(c: ConnectionState): string[] {
  const out: string[] = [];
  for (const line of c._ehloLines ?? []) {
    const m = /^AUTH[\s=](.*)/i.exec(line);
    if (m) out.push(...m[1].split(/[\s=]+/).filter(Boolean).map((x) => x.toUpperCase()));
  }
  return [...new Set(out)];
}

/**
 * Why this connection cannot authenticate with `auth`, in words; undefined when it can.
 * Exported for tests.
 */
export function authOfferProblem(c: ConnectionState, auth: AuthData): string | undefined {
  const oauth = Boolean(auth.oauth2) || String(auth.type ?? '').toUpperCase() === 'OAUTH2';
  const offered = c._ehloLines ? offeredMechanisms(c) : [];
  const where = `${c.options.host ?? 'the server'}:${c.options.port ?? ''}`.replace(/:$/, '');
  const plainHint = !c.secure && c.options.ignoreTLS
    ? ' (many servers offer AUTH only after STARTTLS: try smtp+starttls:// or smtps://)'
    : ' (wrong host or port? a server that takes mail from anyone is not the smart host these credentials are for)';
  if (offered.length === 0) {
    return `${where} offered no AUTH in its EHLO reply, so the configured credentials could not be used; smarthost does not send mail unauthenticated when credentials are configured${plainHint}`;
  }
  const needed = oauth ? ['XOAUTH2'] : PASSWORD_MECHANISMS;
  if (!offered.some((m) => needed.includes(m))) {
    const what = oauth ? 'XOAUTH2, which OAuth2 (auth: xoauth2) needs' : `${PASSWORD_MECHANISMS.join(', ')} (the mechanisms a password can be used with)`;
    return `${where} offered AUTH ${offered.join(' ')} but not ${what}; nothing was sent`;
  }
  return undefined;
}

let installed = false;

/** Wraps SMTPConnection.prototype.login once (idempotent). */
export function installAuthOfferCheck(): void {
  if (installed) return;
  installed = true;
  const proto = (SMTPConnection as unknown as { prototype: { login: Login } }).prototype;
  const original = proto.login;
  proto.login = function login(this: ConnectionState, auth, callback) {
    if (this.options?.requireAuthOffer) {
      const problem = authOfferProblem(this, auth ?? {});
      if (problem) {
        const err = this._formatError(problem, 'EAUTH', false, 'API') as Error & { authNotOffered?: string };
        err.authNotOffered = problem;
        return callback(err);
      }
    }
    return original.call(this, auth, callback);
  };
}
