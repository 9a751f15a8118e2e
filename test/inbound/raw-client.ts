/**
 * A raw SMTP client over a plain socket for protocol edge cases: sends exact bytes, reads whole
 * replies (multi-line aware), and can upgrade to TLS. Every wait is bounded.
 */
import net from 'node:net';
import tls from 'node:tls';

export interface Reply {
  code: number;
  text: string;
  lines: string[];
}

export class RawClient {
  private socket: net.Socket | tls.TLSSocket;
  private buffer = '';
  private replies: Reply[] = [];
  private waiting: Array<() => void> = [];
  closed = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
  }

  static async connect(port: number, opts: { localAddress?: string; host?: string; tls?: boolean } = {}): Promise<RawClient> {
    const host = opts.host ?? '127.0.0.1';
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const s = opts.tls
        ? tls.connect({ port, host, rejectUnauthorized: false, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) } as tls.ConnectionOptions, () => resolve(s))
        : net.connect({ port, host, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) }, () => resolve(s));
      s.once('error', reject);
    });
    return new RawClient(socket);
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (d: Buffer) => {
      this.buffer += d.toString('latin1');
      this.parse();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  private parse(): void {
    let current: string[] = [];
    // Bounded: consumes the buffer line by line.
    for (;;) {
      const nl = this.buffer.indexOf('\r\n');
      if (nl < 0) break;
      const line = this.buffer.slice(0, nl);
      this.buffer = this.buffer.slice(nl + 2);
      current.push(line);
      if (line[3] !== '-') {
        this.replies.push({ code: Number(line.slice(0, 3)), text: current.map((l) => l.slice(4)).join('\n'), lines: current });
        current = [];
      }
    }
    if (current.length) this.buffer = current.map((l) => `${l}\r\n`).join('') + this.buffer;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiting.splice(0)) w();
  }

  /** The next reply; rejects after ms, or when the connection closed with nothing left. */
  async reply(ms = 5000): Promise<Reply> {
    const end = Date.now() + ms;
    while (!this.replies.length) {
      if (this.closed) throw new Error('connection closed before a reply');
      if (Date.now() > end) throw new Error(`no reply within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.waiting.push(() => { clearTimeout(t); resolve(); });
      });
    }
    return this.replies.shift()!;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  async cmd(line: string, ms?: number): Promise<Reply> {
    this.write(`${line}\r\n`);
    return this.reply(ms);
  }

  /** STARTTLS already answered 220: wraps the socket in TLS. */
  async upgrade(): Promise<void> {
    const plain = this.socket as net.Socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const s = tls.connect({ socket: plain, rejectUnauthorized: false }, () => resolve(s));
      s.once('error', reject);
    });
    this.socket = secure;
    this.attach(secure);
  }

  get tlsSocket(): tls.TLSSocket | undefined {
    return this.socket instanceof tls.TLSSocket ? this.socket : undefined;
  }

  /** Resolves when the server closed the connection (or after ms). */
  async waitClosed(ms = 5000): Promise<boolean> {
    const end = Date.now() + ms;
    while (!this.closed && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}
