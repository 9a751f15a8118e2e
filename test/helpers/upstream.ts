/**
 * A real SMTP upstream on loopback for end-to-end tests, built on smtp-server: it records every
 * message it takes (envelope + raw bytes) and can be told to refuse recipients, answer 4xx,
 * require STARTTLS + AUTH, or drop the connection after the final dot.
 */
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import type { AddressInfo } from 'node:net';
import selfsigned from 'selfsigned';

export interface ReceivedMessage {
  mailFrom: string;
  recipients: string[];
  raw: Buffer;
  user?: string;
  secure: boolean;
}

export interface UpstreamOptions {
  /** Offer STARTTLS with a generated self-signed certificate; its PEM is returned as `ca`. */
  tls?: boolean;
  /** Require AUTH with this user/password. */
  auth?: { user: string; pass: string };
  /** Per-recipient answer: return an SMTP error to refuse. */
  onRcpt?: (address: string) => { code: number; message: string } | undefined;
  /** Answer for the whole message at end of data (e.g. 451 or 550). */
  onData?: (msg: ReceivedMessage) => { code: number; message: string } | undefined;
}

export interface Upstream {
  port: number;
  ca?: string;
  messages: ReceivedMessage[];
  /** Resolves when `count` messages have been received (or rejects after timeoutMs). */
  waitFor(count: number, timeoutMs?: number): Promise<ReceivedMessage[]>;
  stop(): Promise<void>;
}

export async function generateCert(commonName = 'localhost'): Promise<{ cert: string; key: string }> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: commonName }], {
    keySize: 2048,
    days: 30,
    extensions: [{ name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] }],
  } as never);
  return { cert: pems.cert, key: pems.private };
}

export async function startUpstream(opts: UpstreamOptions = {}, port = 0): Promise<Upstream> {
  const messages: ReceivedMessage[] = [];
  const waiters: Array<() => void> = [];
  const tls = opts.tls ? await generateCert() : undefined;
  const options: SMTPServerOptions = {
    secure: false,
    disabledCommands: [...(opts.tls ? [] : ['STARTTLS']), ...(opts.auth ? [] : ['AUTH'])],
    authOptional: !opts.auth,
    allowInsecureAuth: false,
    disableReverseLookup: true,
    logger: false,
    ...(tls ? { key: tls.key, cert: tls.cert } : {}),
    onAuth(auth, _session, cb) {
      if (opts.auth && auth.username === opts.auth.user && auth.password === opts.auth.pass) return cb(null, { user: auth.username });
      const err = new Error('5.7.8 Authentication credentials invalid') as Error & { responseCode: number };
      err.responseCode = 535;
      cb(err);
    },
    onRcptTo(address, _session, cb) {
      const refuse = opts.onRcpt?.(address.address);
      if (refuse) {
        const err = new Error(refuse.message) as Error & { responseCode: number };
        err.responseCode = refuse.code;
        return cb(err);
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const msg: ReceivedMessage = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          recipients: session.envelope.rcptTo.map((r) => r.address),
          raw: Buffer.concat(chunks),
          user: session.user as string | undefined,
          secure: session.secure,
        };
        const refuse = opts.onData?.(msg);
        if (refuse) {
          const err = new Error(refuse.message) as Error & { responseCode: number };
          err.responseCode = refuse.code;
          return cb(err);
        }
        messages.push(msg);
        for (const w of waiters.splice(0)) w();
        cb(null, '2.0.0 Ok: queued');
      });
    },
  };
  const server = new SMTPServer(options);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actualPort = (server.server.address() as AddressInfo).port;
  return {
    port: actualPort,
    ca: tls?.cert,
    messages,
    waitFor(count, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`upstream got ${messages.length} of ${count} messages within ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (messages.length >= count) {
            clearTimeout(timer);
            resolve(messages);
          } else waiters.push(check);
        };
        check();
      });
    },
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
