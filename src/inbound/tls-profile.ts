/**
 * TLS profiles for inbound listeners (`listen[].tlsProfile`), as decke/smtprelay's `tls_profile`:
 *   modern        TLS 1.3 only
 *   intermediate  TLS 1.2 and 1.3, Node's default cipher list (the default)
 *   legacy        TLS 1.0 and later, with the RSA-key-exchange suites (AES128-SHA, AES256-SHA)
 *                 that 2010–2016 printer controllers offer, at OpenSSL security level 0.
 * OpenSSL 3 refuses TLS 1.0/1.1 at its default security level (their handshake signatures use
 * SHA-1), so `legacy` lowers it, for that listener's context only ("@SECLEVEL=0", see
 * nodejs.org/api/tls.html#openssl-security-level). 3DES is not offered: Node's OpenSSL does not
 * build it. Upstream (outbound) TLS never uses these: transports keep Node's TLS 1.2 minimum.
 */
import { DEFAULT_CIPHERS, type SecureContextOptions } from 'node:tls';

export type TlsProfile = 'modern' | 'intermediate' | 'legacy';

/** Suites old controllers need that Node's default list leaves out or that need SHA-1 MACs. */
const LEGACY_EXTRA = ['ECDHE-RSA-AES128-SHA', 'ECDHE-RSA-AES256-SHA', 'AES128-SHA', 'AES256-SHA', 'AES128-SHA256', 'AES256-SHA256', 'AES128-GCM-SHA256', 'AES256-GCM-SHA384'];

/** The secure-context options (merged into smtp-server's) for a profile. */
export function tlsProfileOptions(profile: TlsProfile): Pick<SecureContextOptions, 'minVersion' | 'maxVersion' | 'ciphers'> {
  if (profile === 'modern') return { minVersion: 'TLSv1.3' };
  if (profile === 'legacy') return { minVersion: 'TLSv1', ciphers: `${DEFAULT_CIPHERS}:${LEGACY_EXTRA.join(':')}:@SECLEVEL=0` };
  return { minVersion: 'TLSv1.2' };
}

/** The lowest protocol version a profile accepts, as a person reads it. */
export function lowestVersion(profile: TlsProfile): string {
  return profile === 'modern' ? 'TLS 1.3' : profile === 'legacy' ? 'TLS 1.0' : 'TLS 1.2';
}

/** The plain-words warning for a listener that accepts old TLS (log at start, doctor, console). */
export function legacyWarning(where: string): string {
  return `listener ${where} accepts TLS 1.0 and 1.1 with weak ciphers (tlsProfile: legacy) for old printers and scanners: `
    + 'acceptable only on a LAN, where the devices are, never on a port reachable from the internet; '
    + 'mail still leaves for the upstream over TLS 1.2 or later';
}
