/**
 * Active Directory objectGUID values, in the two forms an export gives them:
 *
 *  - text, as Get-ADUser prints it: 9030057d-d403-4590-8c3b-a643fc36df3d (braces optional);
 *  - the raw 16 bytes, as ldifde / ldapsearch give them base64-encoded (objectGUID:: …).
 *
 * The raw bytes are in Microsoft's mixed-endian GUID layout: the first three groups (4, 2 and 2
 * bytes) are stored little-endian, the last two (2 and 6 bytes) as they are written. Reading the
 * bytes straight into hex gives a different, wrong GUID that matches no object, so the conversion
 * swaps those groups. Every function returns a plain-words reason instead of throwing.
 */

export type GuidResult = { ok: true; guid: string } | { ok: false; reason: string };

const GUID_TEXT = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Validates a textual GUID (with or without braces) and returns it lower-case without braces. */
export function parseGuidText(input: string): GuidResult {
  const text = input.trim();
  if (text === '') return { ok: false, reason: 'the objectGUID is empty' };
  const bare = text.startsWith('{') && text.endsWith('}') ? text.slice(1, -1) : text;
  if (GUID_TEXT.test(bare)) return { ok: true, guid: bare.toLowerCase() };
  if (/^[0-9a-f]{32}$/i.test(bare)) {
    return { ok: false, reason: `"${text}" has 32 hex digits but no dashes: is it the raw byte order (as in an LDAP filter)? Give the GUID as Get-ADUser prints it` };
  }
  if (/^[A-Za-z0-9+/]{22}==$/.test(text)) return guidFromBase64(text);
  return { ok: false, reason: `"${text}" is not a GUID (expected 8-4-4-4-12 hex digits, e.g. 9030057d-d403-4590-8c3b-a643fc36df3d)` };
}

/** Converts the 16 raw objectGUID bytes (Microsoft layout) to the textual GUID. */
export function guidFromBytes(bytes: Uint8Array): GuidResult {
  if (bytes.length !== 16) return { ok: false, reason: `an objectGUID is 16 bytes, this one has ${bytes.length}` };
  const hex = (from: number, to: number, reverse: boolean): string => {
    const part = Array.from(bytes.subarray(from, to));
    if (reverse) part.reverse();
    return part.map((b) => b.toString(16).padStart(2, '0')).join('');
  };
  const guid = [hex(0, 4, true), hex(4, 6, true), hex(6, 8, true), hex(8, 10, false), hex(10, 16, false)].join('-');
  return { ok: true, guid };
}

/** Converts a base64 objectGUID (as in LDIF `objectGUID:: …`) to the textual GUID. */
export function guidFromBase64(b64: string): GuidResult {
  const clean = b64.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(clean) || clean.length % 4 !== 0) {
    return { ok: false, reason: `"${b64}" is not valid base64` };
  }
  return guidFromBytes(Buffer.from(clean, 'base64'));
}

/** The inverse of guidFromBytes: textual GUID → the 16 bytes as AD stores them (used by tests and LDAP filters). */
export function guidToBytes(guid: string): Uint8Array {
  const hex = guid.replace(/[{}-]/g, '');
  const raw = Buffer.from(hex, 'hex');
  const out = Buffer.from(raw);
  out.set(raw.subarray(0, 4).reverse(), 0);
  out.set(Buffer.from(hex.slice(8, 12), 'hex').reverse(), 4);
  out.set(Buffer.from(hex.slice(12, 16), 'hex').reverse(), 6);
  return out;
}
