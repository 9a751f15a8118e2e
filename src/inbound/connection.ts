/**
 * smtp-server, adjusted where its defaults fall short of what a relay owes its clients
 * (research/smtp-robustness.md §3.5, §4.2). The changes are confined to subclasses used only by
 * smarthost's own servers; the library's protocol code is otherwise untouched.
 *
 *  - Enhanced status codes: a reply text starting with "x.y.z " (how every policy of src/inbound/
 *    writes its replies) is sent with that code, instead of the library's fixed table, where
 *    550 always meant 5.1.1 and 554 always 5.6.0.
 *  - No 100 ms pause before the greeting (see init()), and no event-loop turns before it either,
 *    unless devices.pregreetWait holds it for clients outside the relay list.
 *  - Over-long command lines: "500 5.5.2" and the session continues (command-stream.ts).
 *  - Absolute deadlines: after each reply the client has `commandDeadline` to deliver its next
 *    complete command, and `dataDeadline` after "354" for the whole message. Trickling one byte at
 *    a time (slowloris) resets the idle timeout but not these. While the relay itself is busy
 *    (a hook not answered yet, or the message being written to the spool) the deadline waits.
 *  - PROXY protocol only from listed peers, which may be CIDR ranges (the library matches exact
 *    addresses only), in version 1 or 2 (the library reads version 1 only).
 *  - EHLO keywords withheld per client (server.ehloHidden): Postfix's
 *    smtpd_discard_ehlo_keyword_address_maps; only the announcement goes, as in Postfix.
 *  - A failed TLS handshake (STARTTLS or implicit) is reported once, as server event 'tls-failure'
 *    with the client, the session and what its ClientHello offered, instead of the library's two
 *    identical errors without either.
 * On deadline the client gets "421 4.4.2" and the connection is closed.
 */
import type net from 'node:net';
import type tls from 'node:tls';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import type { SMTPStream } from 'smtp-server/lib/smtp-stream.js';
import { LineLimitedStream } from './command-stream.ts';
import { inRanges, type Range } from '../core/cidr.ts';
import { randomHex } from '../core/ids.ts';
import { looksLikeProxyV2, parseProxyV2 } from './proxy-v2.ts';
import { parseClientHello, peekClientHello, type ClientHelloInfo } from './client-hello.ts';

/** A TLS handshake that did not complete, as the listener logs it. */
export interface TlsFailure {
  /** The client's address as the socket has it (not normalised). */
  remoteAddress: string;
  /** SMTP session id; absent for implicit TLS (the session starts after the handshake). */
  session?: string;
  stage: 'starttls' | 'implicit';
  error: Error & { code?: string; reason?: string };
  hello?: ClientHelloInfo;
}

type ProxyCallback = Parameters<SMTPServer['_handleProxy']>[1];

export interface Deadlines {
  /** Longest wait, in ms, from a reply to the next complete command. */
  command: number;
  /** Longest time, in ms, from "354" to the end of the message. */
  data: number;
}

/** "5.7.1 Relay access denied" → ["5.7.1", "Relay access denied"]. */
const LEADING_STATUS = /^([245]\.\d{1,3}\.\d{1,3}) /;
const STATUS_CONTEXT = 'status:';

export class SmarthostConnection extends SMTPConnection {
  deadlineTimer: NodeJS.Timeout | undefined;
  /** The server is stopping gracefully: close as soon as nothing is in flight. */
  stopping = false;
  /** EHLO keywords withheld from this client while its EHLO reply is being written. */
  private ehloFilter: ReadonlySet<string> | undefined;
  private clientHello: ClientHelloInfo | undefined;
  private tlsFailed = false;

  /**
   * As the library's init(), without its fixed 100 ms pause before the greeting (an early-talker
   * trap for spam bots): LAN devices send one message per connection, and that pause alone would
   * cap a client sending one after the other at 10 messages a second.
   */
  override init(): void {
    this._setListeners(() => {
      if (this._server.options.maxClients && this._server.connections.size > this._server.options.maxClients) {
        return this.send(421, `4.3.2 ${this.name} Too many connected clients, try again in a moment`, false);
      }
      // devices.pregreetWait, for clients outside the relay list only: a command before the
      // greeting then gets the library's "421 You talk too soon" (postscreen's pregreet test)
      const wait = (this._server as SmarthostServer).pregreetWait?.(this) ?? 0;
      if (wait > 0) {
        const timer = setTimeout(() => { if (!this._closing && !this._closed) this.connectionReady(); }, wait);
        timer.unref();
        return;
      }
      this.connectionReady();
    });
  }

  override send(code: number, data?: string | string[] | null, context?: string | false): void {
    if (this.ehloFilter && Array.isArray(data)) {
      const hidden = this.ehloFilter;
      data = data.filter((line, i) => i === 0 || !hidden.has(line.split(' ')[0].toUpperCase()));
    }
    const m = typeof data === 'string' && context !== false ? LEADING_STATUS.exec(data) : null;
    if (m && typeof data === 'string') super.send(code, data.slice(m[0].length), STATUS_CONTEXT + m[1]);
    else super.send(code, data, context);
    if (code !== 421) this.armDeadline(code === 354 ? 'data' : 'command');
    if (this.stopping && code !== 421) setImmediate(() => this.closeIfIdle());
  }

  override handler_EHLO(command: Buffer, callback: () => void): void {
    const hidden = (this._server as SmarthostServer).ehloHidden?.(this);
    this.ehloFilter = hidden && hidden.size ? hidden : undefined;
    try {
      super.handler_EHLO(command, callback);
    } finally {
      this.ehloFilter = undefined;
    }
  }

  /**
   * STARTTLS: the ClientHello is read first (and put back) so a failed handshake can say what the
   * client offered. The parser stops receiving now, as the library's upgrade() does at once.
   */
  override upgrade(callback: () => void, secureCallback?: () => void): void {
    const socket = this._socket as net.Socket;
    if (this.secure || !(socket as { readable?: boolean }).readable) return super.upgrade(callback, secureCallback);
    if (this._parser) socket.unpipe(this._parser);
    peekClientHello(socket, (hello) => { this.clientHello = parseClientHello(hello); }, (gotHello) => {
      if (gotHello) return super.upgrade(callback, secureCallback);
      // gone after "220 Ready to start TLS" without a ClientHello: a device that gave up on TLS
      this.tlsFailed = true;
      (this._server as SmarthostServer).emit('tls-failure', { remoteAddress: this.remoteAddress, session: this.id, stage: 'starttls', error: new Error('') } satisfies TlsFailure);
    });
  }

  /** A failed STARTTLS handshake errors twice ('error' and '_tlsError'): reported once, with who and what. */
  override _onError(err: Error): void {
    if (this.tlsFailed) return;
    if (this._upgrading) {
      this.tlsFailed = true;
      (this._server as SmarthostServer).emit('tls-failure', { remoteAddress: this.remoteAddress, session: this.id, stage: 'starttls', error: err, hello: this.clientHello } satisfies TlsFailure);
      return;
    }
    super._onError(err);
  }

  /** Graceful stop: an idle session hears 421 now; one with a message in flight after its reply. */
  shutdownWhenIdle(): void {
    this.stopping = true;
    this.closeIfIdle();
  }

  private closeIfIdle(): void {
    if (this._closing || this._closed || this._handlerPending || this._dataStream || this._upgrading) return;
    this.send(421, `4.3.2 ${this.name} Service shutting down, try again later`);
  }

  override _getEnhancedStatusCode(code: number, context?: string | false): string {
    if (typeof context === 'string' && context.startsWith(STATUS_CONTEXT)) return this._useEnhancedStatusCodes() ? context.slice(STATUS_CONTEXT.length) : '';
    return super._getEnhancedStatusCode(code, context);
  }

  override _createParser(): SMTPStream {
    const parser = new LineLimitedStream({ maxCommandLength: this._server.options.maxCommandLength });
    parser.onLineTooLong = () => this.send(500, '5.5.2 Error: command line too long');
    parser.oncommand = (command, callback) => this._onCommand(command, callback);
    parser.on('error', (err: Error) => this.send(421, `4.4.2 Error: ${err.message}`));
    return parser;
  }

  /**
   * As the library's close() (221 or 421 sent, FIN queued), then the socket is closed as soon as
   * that reply has left, as Postfix's smtpd does, instead of waiting for the client's FIN. Many
   * clients (smtp-source among them) end with a reset, which Node turns into an error object with
   * a stack trace and a socket torn down by error: measured ~100 µs of the event loop per session.
   * Bytes the client sends after QUIT were never going to be answered (the library stops parsing).
   */
  override close(): void {
    const socket = this._socket;
    super.close();
    if (this._upgrading || socket.destroyed) return;
    if (socket.writableFinished) socket.destroy();
    else socket.once('finish', () => socket.destroy());
  }

  override _onClose(): void {
    clearTimeout(this.deadlineTimer);
    super._onClose();
  }

  /** Starts the clock for what the client owes us next. */
  armDeadline(kind: 'command' | 'data'): void {
    clearTimeout(this.deadlineTimer);
    if (this._closing || this._closed) return;
    const deadlines = (this._server as SmarthostServer).deadlines;
    const ms = kind === 'data' ? deadlines.data : deadlines.command;
    this.deadlineTimer = setTimeout(() => this.onDeadline(kind), ms);
    this.deadlineTimer.unref();
  }

  private onDeadline(kind: 'command' | 'data'): void {
    if (this._closing || this._closed) return;
    const parser = this._parser;
    // The relay is the one being waited for: a hook has not answered, or onData is still storing.
    if (this._handlerPending || (this._dataStream && parser && !parser._dataMode)) return this.armDeadline(kind);
    this.send(421, `4.4.2 ${this.name} Error: ${kind === 'data' ? 'message' : 'command'} not received in time, closing connection`);
  }
}

/** An SMTPServer whose connections are SmarthostConnection. */
export class SmarthostServer extends SMTPServer {
  deadlines: Deadlines;
  /** Peers allowed to send a PROXY protocol header (addresses and CIDR ranges). */
  proxyFrom: Range[];
  /** How long to hold the greeting for a connection, in ms (set by the listener). */
  pregreetWait?: (connection: SmarthostConnection) => number;
  /** EHLO keywords not to announce to a connection (set by the listener). */
  ehloHidden?: (connection: SmarthostConnection) => ReadonlySet<string>;

  constructor(options: SMTPServerOptions, deadlines: Deadlines, proxyFrom: Range[]) {
    super(options);
    this.deadlines = deadlines;
    this.proxyFrom = proxyFrom;
  }

  /**
   * Without a PROXY header to read, the library still waits a turn of the event loop (setImmediate)
   * and draws its session id from the CSPRNG with a system call: together ~40 µs per connection on
   * the bench machine, where a printer opens one connection per message. Same id format, drawn from
   * a pool (core/ids.ts). From a listed load balancer, a version 2 header (binary) is read here
   * (proxy-v2.ts); a version 1 line goes to the library, which reads only that one.
   */
  override _handleProxy(socket: net.Socket, callback: ProxyCallback): void {
    const id = BigInt(`0x${randomHex(10)}`).toString(32).padStart(16, '0');
    if (!this._expectsProxyHeader(socket)) return callback(null, { id });
    let buffered = Buffer.alloc(0);
    let finished = false;
    /** Stops reading here; what was read beyond the header goes back to the socket. */
    const detach = (rest: Buffer) => {
      finished = true;
      socket.removeListener('readable', onReadable);
      socket.removeListener('close', onGone);
      socket.removeListener('end', onGone);
      socket.removeListener('error', onGone);
      if (rest.length) socket.unshift(rest);
    };
    const finish = (err: Error | null, options?: { id: string; remoteAddress?: string; remotePort?: number }, rest = Buffer.alloc(0)) => {
      if (finished) return;
      detach(rest);
      if (err) {
        socket.on('error', () => undefined);
        socket.destroy();
      }
      callback(err, options);
    };
    const onGone = () => finish(new Error('connection closed before its PROXY header'));
    const onReadable = () => {
      for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) buffered = Buffer.concat([buffered, chunk]);
      if (!looksLikeProxyV2(buffered)) {
        // version 1 (or not a PROXY header at all, which the library refuses): give it the bytes back
        detach(buffered);
        return super._handleProxy(socket, callback);
      }
      const header = parseProxyV2(buffered);
      if (header.kind === 'incomplete') return;
      if (header.kind === 'invalid') return finish(new Error(`invalid PROXY header: ${header.reason}`));
      const rest = buffered.subarray(header.length);
      if (header.kind === 'local') return finish(null, { id }, rest);
      finish(null, { id, remoteAddress: header.address, remotePort: header.port }, rest);
    };
    socket.on('readable', onReadable);
    socket.on('close', onGone);
    socket.on('end', onGone);
    socket.on('error', onGone);
  }

  /** Implicit TLS: the ClientHello is read first, and a failed handshake reported once ('tls-failure'). */
  override _upgrade(socket: net.Socket, callback: (err: Error | null, tlsSocket?: tls.TLSSocket) => void): void {
    let hello: ClientHelloInfo | undefined;
    peekClientHello(socket, (h) => { hello = parseClientHello(h); }, (gotHello) => gotHello ? super._upgrade(socket, (err, tlsSocket) => {
      // A peer that connected and left without a ClientHello (a port check, a health probe) is
      // not a device failing TLS: it keeps the library's ordinary error.
      if (err && hello) {
        this.emit('tls-failure', { remoteAddress: socket.remoteAddress ?? '', stage: 'implicit', error: err, hello } satisfies TlsFailure);
        Object.assign(err, { tlsReported: true });
      }
      callback(err, tlsSocket);
    }) : callback(Object.assign(new Error('Socket closed while initiating TLS'), { code: 'SocketError', responseCode: 500, report: false })));
  }

  /** The library compares exact addresses only; the config allows CIDR ranges too. */
  override _expectsProxyHeader(socket: net.Socket): boolean {
    return this.proxyFrom.length > 0 && !!socket.remoteAddress && inRanges(socket.remoteAddress, this.proxyFrom);
  }

  /** Graceful stop: every session closes once its current message (if any) is answered. */
  shutdownSessions(): void {
    for (const c of this.connections) if (c instanceof SmarthostConnection) c.shutdownWhenIdle();
  }

  override connect(socket: net.Socket | tls.TLSSocket, socketOptions?: ConstructorParameters<typeof SMTPConnection>[2]): void {
    const connection = new SmarthostConnection(this, socket, socketOptions);
    this.connections.add(connection);
    connection.on('error', (err: Error) => this._onError(err));
    connection.on('connect', (data: unknown) => this._onClientConnect(data as never));
    connection.init();
  }
}
