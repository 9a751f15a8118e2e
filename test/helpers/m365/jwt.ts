/**
 * Minimal JWS (compact JWT) signing and checking for the stand-ins: RS256 and PS256, as Entra ID
 * uses for access tokens and accepts for client assertions. Strict: signature, exp/nbf, aud, iss.
 */
import { createPublicKey, createSign, createVerify, constants, type KeyObject } from 'node:crypto';

export type Claims = Record<string, unknown>;

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

export function signJwt(header: Claims, claims: Claims, privateKeyPem: string): string {
  const alg = header.alg === 'PS256' ? 'PS256' : 'RS256';
  const input = `${b64({ typ: 'JWT', ...header, alg })}.${b64(claims)}`;
  const s = createSign('RSA-SHA256').update(input);
  const sig = alg === 'PS256'
    ? s.sign({ key: privateKeyPem, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })
    : s.sign(privateKeyPem);
  return `${input}.${sig.toString('base64url')}`;
}

export function decodeJwt(token: string): { header: Claims; claims: Claims; input: string; signature: Buffer } | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')) as Claims,
      claims: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as Claims,
      input: `${parts[0]}.${parts[1]}`,
      signature: Buffer.from(parts[2], 'base64url'),
    };
  } catch {
    return undefined;
  }
}

/** Verifies signature and time claims; returns the claims or a reason. */
export function verifyJwt(token: string, key: KeyObject | string, nowSec: number, skewSec = 0): { ok: true; claims: Claims; header: Claims } | { ok: false; reason: string } {
  const d = decodeJwt(token);
  if (!d) return { ok: false, reason: 'malformed token' };
  const pub = typeof key === 'string' ? createPublicKey(key) : key;
  const v = createVerify('RSA-SHA256').update(d.input);
  let good = false;
  if (d.header.alg === 'RS256') good = v.verify(pub, d.signature);
  else if (d.header.alg === 'PS256') good = v.verify({ key: pub, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, d.signature);
  else return { ok: false, reason: `unsupported alg ${String(d.header.alg)}` };
  if (!good) return { ok: false, reason: 'bad signature' };
  const exp = Number(d.claims.exp);
  const nbf = d.claims.nbf === undefined ? 0 : Number(d.claims.nbf);
  if (!Number.isFinite(exp) || exp + skewSec <= nowSec) return { ok: false, reason: 'token expired' };
  if (nbf - skewSec > nowSec) return { ok: false, reason: 'token not yet valid' };
  return { ok: true, claims: d.claims, header: d.header };
}
