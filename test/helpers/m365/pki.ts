/**
 * Test PKI for the Microsoft stand-ins: a loopback server certificate (msal-node insists on https
 * for the authority, and the SMTP stand-in offers STARTTLS) and certificates for app credentials
 * and connector client authentication. Self-signed; tests trust them through the upstream's `ca`.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generate } from 'selfsigned';

export interface Pem { cert: string; key: string }

/** A certificate for 127.0.0.1 / localhost, usable as server cert and as its own trust anchor. */
export async function loopbackCert(): Promise<Pem> {
  const p = await generate([{ name: 'commonName', value: 'localhost' }], {
    keySize: 2048,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { cert: p.cert, key: p.private };
}

/** A certificate with the given CN (app credential, or a connector's client certificate). */
export async function namedCert(cn: string): Promise<Pem> {
  const p = await generate([{ name: 'commonName', value: cn }], {
    keySize: 2048,
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', clientAuth: true, serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: cn }] },
    ],
  });
  return { cert: p.cert, key: p.private };
}

/** SHA-1 and SHA-256 thumbprints as base64url (the JWT x5t / x5t#S256 header form). */
export function thumbprints(certPem: string): { x5t: string; x5tS256: string; sha1Hex: string } {
  const der = new X509Certificate(certPem).raw;
  return {
    x5t: createHash('sha1').update(der).digest('base64url'),
    x5tS256: createHash('sha256').update(der).digest('base64url'),
    sha1Hex: createHash('sha1').update(der).digest('hex').toUpperCase(),
  };
}

/** A temp folder for PEM files and mailroots, removed by cleanup(). */
export function tempDir(prefix = 'smarthost-m365-'): { dir: string; write(name: string, text: string): string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return {
    dir,
    write(name, text) { const p = path.join(dir, name); writeFileSync(p, text); return p; },
    cleanup() { rmSync(dir, { recursive: true, force: true }); },
  };
}
