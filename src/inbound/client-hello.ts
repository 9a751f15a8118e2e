/**
 * What a TLS client offered, read from its ClientHello before the handshake starts, so that a
 * failed handshake can be logged as "the printer offered TLS 1.0 with AES128-SHA" instead of
 * OpenSSL's "unsupported protocol". The bytes are peeked: read from the plain socket and pushed
 * back (socket.unshift), where the TLS socket built on top reads them first. Pure parsing; bad or
 * partial input yields what could be read, never an exception.
 */
import type net from 'node:net';

export interface ClientHelloInfo {
  /** Protocol versions offered, highest first ("TLS 1.2", …); a pre-1.3 hello names only its highest. */
  versions: string[];
  /** Cipher suites offered, OpenSSL names where known, else "0xC02F". */
  ciphers: string[];
  /** The bytes were not a TLS handshake at all (a client speaking plain SMTP after STARTTLS, say). */
  notTls?: boolean;
}

const VERSION_NAMES: Record<number, string> = { 0x0300: 'SSL 3.0', 0x0301: 'TLS 1.0', 0x0302: 'TLS 1.1', 0x0303: 'TLS 1.2', 0x0304: 'TLS 1.3' };

/** IANA code → OpenSSL name, for the suites devices and common clients send. */
const CIPHER_NAMES: Record<number, string> = {
  0x0004: 'RC4-MD5', 0x0005: 'RC4-SHA', 0x000a: 'DES-CBC3-SHA', 0x002f: 'AES128-SHA', 0x0035: 'AES256-SHA', 0x003c: 'AES128-SHA256', 0x003d: 'AES256-SHA256',
  0x0033: 'DHE-RSA-AES128-SHA', 0x0039: 'DHE-RSA-AES256-SHA', 0x009c: 'AES128-GCM-SHA256', 0x009d: 'AES256-GCM-SHA384', 0x009e: 'DHE-RSA-AES128-GCM-SHA256', 0x009f: 'DHE-RSA-AES256-GCM-SHA384',
  0xc009: 'ECDHE-ECDSA-AES128-SHA', 0xc00a: 'ECDHE-ECDSA-AES256-SHA', 0xc013: 'ECDHE-RSA-AES128-SHA', 0xc014: 'ECDHE-RSA-AES256-SHA', 0xc012: 'ECDHE-RSA-DES-CBC3-SHA',
  0xc023: 'ECDHE-ECDSA-AES128-SHA256', 0xc024: 'ECDHE-ECDSA-AES256-SHA384', 0xc027: 'ECDHE-RSA-AES128-SHA256', 0xc028: 'ECDHE-RSA-AES256-SHA384',
  0xc02b: 'ECDHE-ECDSA-AES128-GCM-SHA256', 0xc02c: 'ECDHE-ECDSA-AES256-GCM-SHA384', 0xc02f: 'ECDHE-RSA-AES128-GCM-SHA256', 0xc030: 'ECDHE-RSA-AES256-GCM-SHA384',
  0xcca8: 'ECDHE-RSA-CHACHA20-POLY1305', 0xcca9: 'ECDHE-ECDSA-CHACHA20-POLY1305',
  0x1301: 'TLS_AES_128_GCM_SHA256', 0x1302: 'TLS_AES_256_GCM_SHA384', 0x1303: 'TLS_CHACHA20_POLY1305_SHA256',
};

const isGrease = (v: number): boolean => (v & 0x0f0f) === 0x0a0a;
const hex = (v: number): string => `0x${v.toString(16).toUpperCase().padStart(4, '0')}`;

/** Parses the first TLS record of a connection. */
export function parseClientHello(buf: Buffer): ClientHelloInfo {
  const info: ClientHelloInfo = { versions: [], ciphers: [] };
  if (buf.length < 5) return info;
  if (buf[0] !== 0x16 || buf[1] !== 0x03) {
    // SSLv2-style hello (high bit length) or not TLS at all
    if ((buf[0] & 0x80) && buf[2] === 0x01) return { versions: ['SSL 2.0 hello'], ciphers: [] };
    return { ...info, notTls: true };
  }
  try {
    let p = 5;
    if (buf[p] !== 0x01) return info; // not a ClientHello
    p += 4;
    const legacyVersion = buf.readUInt16BE(p);
    p += 2 + 32;
    p += 1 + buf[p]; // session id
    const cipherLen = buf.readUInt16BE(p);
    p += 2;
    for (let i = 0; i + 1 < cipherLen && p + i + 1 < buf.length; i += 2) {
      const c = buf.readUInt16BE(p + i);
      if (isGrease(c) || c === 0x00ff || c === 0x5600) continue; // GREASE, renegotiation SCSV, fallback SCSV
      info.ciphers.push(CIPHER_NAMES[c] ?? hex(c));
    }
    p += cipherLen;
    p += 1 + buf[p]; // compression methods
    let supported: number[] | undefined;
    if (p + 2 <= buf.length) {
      const end = Math.min(buf.length, p + 2 + buf.readUInt16BE(p));
      p += 2;
      while (p + 4 <= end) {
        const type = buf.readUInt16BE(p);
        const len = buf.readUInt16BE(p + 2);
        if (type === 0x002b && p + 5 <= end) {
          supported = [];
          for (let i = p + 5; i + 1 < Math.min(end, p + 5 + buf[p + 4]); i += 2) {
            const v = buf.readUInt16BE(i);
            if (!isGrease(v)) supported.push(v);
          }
        }
        p += 4 + len;
      }
    }
    // Without supported_versions (before TLS 1.3) the hello names only the highest version; the
    // lowest the client would accept is not sent, so it is not claimed here.
    const offered = supported ?? [legacyVersion];
    info.versions = [...new Set(offered)].sort((a, b) => b - a).map((v) => VERSION_NAMES[v] ?? hex(v));
  } catch {
    // truncated: keep what was read
  }
  return info;
}

/**
 * Waits for the client's first bytes (its ClientHello), hands them to `seen`, puts them back so
 * the TLS layer reads them, then calls `next(true)`. A client that ends or closes first: the socket
 * is destroyed and `next(false)` is called; the caller must then not build a TLS socket on it
 * (Node crashes wrapping a closed handle).
 */
export function peekClientHello(socket: net.Socket, seen: (hello: Buffer) => void, next: (gotHello: boolean) => void): void {
  let done = false;
  const finish = (hello?: Buffer): void => {
    if (done) return;
    done = true;
    socket.removeListener('readable', onReadable);
    socket.removeListener('end', onEnd);
    socket.removeListener('close', onEnd);
    if (hello) {
      socket.unshift(hello);
      seen(hello);
    } else {
      socket.destroy();
    }
    next(hello !== undefined);
  };
  const onReadable = (): void => {
    const chunk = socket.read() as Buffer | null;
    if (chunk) finish(chunk);
  };
  const onEnd = (): void => finish();
  if (socket.destroyed) return finish();
  socket.on('readable', onReadable);
  socket.once('end', onEnd);
  socket.once('close', onEnd);
  onReadable();
}
