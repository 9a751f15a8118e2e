// Test helper (not a test): a real SMTP upstream on 127.0.0.1 (smtp-server) that records what it got
// and answers per recipient as told: accept, refuse (5xx) or defer (4xx); optional STARTTLS + AUTH,
// and a switch that drops the connection right after the final dot.
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import selfsigned from 'selfsigned';
import type { AddressInfo } from 'node:net';

export interface Received {
  from: string;
  to: string[];
  data: Buffer;
  user?: string;
  /** MAIL FROM parameters as sent (e.g. { BODY: '8BITMIME', SIZE: '123' }). */
  mailArgs?: Record<string, string | boolean>;
}

export interface UpstreamBehaviour {
  /** Reply for a recipient; undefined = accept. e.g. r => r.startsWith('bad') ? [550, '5.1.1 no such user'] : undefined */
  rcpt?: (address: string) => [number, string] | undefined;
  /** Reply for MAIL FROM (address '' = the null sender); undefined = accept. */
  mail?: (address: string) => [number, string] | undefined;
  /** Reply at end of data; undefined = 250. */
  data?: () => [number, string] | undefined;
  /** Drop the TCP connection after the final dot, this many times. */
  dropAfterDot?: number;
  /** Never answer the final dot, this many times (the sender waits; for crash tests). */
  hangAfterDot?: number;
  /** Advertise this SIZE limit in EHLO. */
  size?: number;
  /** Require STARTTLS + AUTH with these credentials. */
  auth?: { user: string; pass: string };
  /** The AUTH mechanisms offered (with auth); default PLAIN, LOGIN, XOAUTH2. */
  authMethods?: string[];
}

export interface TestUpstream {
  port: number;
  received: Received[];
  behaviour: UpstreamBehaviour;
  certPem?: string;
  authAttempts: number;
  close(): Promise<void>;
}

export async function startUpstream(behaviour: UpstreamBehaviour = {}, tls = false): Promise<TestUpstream> {
  const received: Received[] = [];
  let certPem: string | undefined;
  const state = { authAttempts: 0 };
  const options: SMTPServerOptions = {
    logger: false,
    disabledCommands: [],
    authOptional: !behaviour.auth,
    closeTimeout: 200,
    size: behaviour.size,
    onMailFrom(address, _session, cb) {
      const r = upstream.behaviour.mail?.(address.address ?? '');
      if (!r) return cb();
      cb(Object.assign(new Error(r[1]), { responseCode: r[0] }));
    },
    onRcptTo(address, _session, cb) {
      const r = upstream.behaviour.rcpt?.(address.address);
      if (!r) return cb();
      const err = new Error(r[1]) as Error & { responseCode: number };
      err.responseCode = r[0];
      cb(err);
    },
    onAuth(auth, _session, cb) {
      state.authAttempts++;
      const want = upstream.behaviour.auth;
      if (want && auth.username === want.user && auth.password === want.pass) return cb(null, { user: auth.username });
      if (want && auth.method === 'XOAUTH2') {
        if (auth.username === want.user && auth.accessToken === want.pass) return cb(null, { user: auth.username });
        // the XOAUTH2 error challenge (334 + JSON), as Google and Microsoft send it
        return cb(null, { data: { status: '401', schemes: 'bearer', scope: 'https://outlook.office.com/SMTP.Send' } });
      }
      const err = new Error('5.7.3 Authentication unsuccessful') as Error & { responseCode: number };
      err.responseCode = 535;
      cb(err);
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        received.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data: Buffer.concat(chunks), user: session.user as string | undefined, mailArgs: session.envelope.mailFrom ? (session.envelope.mailFrom.args as Record<string, string | boolean> | false) || {} : undefined });
        if ((upstream.behaviour.hangAfterDot ?? 0) > 0) {
          upstream.behaviour.hangAfterDot!--;
          return;
        }
        if ((upstream.behaviour.dropAfterDot ?? 0) > 0) {
          upstream.behaviour.dropAfterDot!--;
          for (const c of (server as unknown as { connections: Set<{ id: string; _socket: { destroy(): void } }> }).connections) {
            if (c.id === session.id) c._socket.destroy();
          }
          return;
        }
        const r = upstream.behaviour.data?.();
        if (!r) return cb(null, '2.0.0 Ok: queued');
        const err = new Error(r[1]) as Error & { responseCode: number };
        err.responseCode = r[0];
        cb(err);
      });
    },
  };
  if (tls || behaviour.auth) {
    const pems = await selfsigned.generate([{ name: 'commonName', value: 'localhost' }]);
    certPem = pems.cert;
    Object.assign(options, { key: pems.private, cert: pems.cert, authMethods: behaviour.authMethods ?? ['PLAIN', 'LOGIN', 'XOAUTH2'] });
  } else {
    Object.assign(options, { disabledCommands: ['STARTTLS', 'AUTH'] });
  }
  const server = new SMTPServer(options);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.server.address() as AddressInfo).port;
  const upstream: TestUpstream = {
    port,
    received,
    behaviour,
    certPem,
    get authAttempts() { return state.authAttempts; },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
  return upstream;
}
