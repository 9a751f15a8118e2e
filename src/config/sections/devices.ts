/**
 * Compatibility with old devices (docs/devices.md): EHLO keywords withheld from listed clients
 * (Postfix's smtpd_discard_ehlo_keyword_address_maps), STARTTLS withheld for a while from a
 * client whose TLS handshake failed (Haraka's tls.ini disable_for_failed_hosts), header repairs.
 */
import { z } from 'zod';
import { isRange } from '../../core/cidr.ts';
import { duration } from '../units.ts';

/** EHLO keywords that can be withheld; AUTH and STARTTLS included. */
export const EHLO_KEYWORDS = ['STARTTLS', 'AUTH', 'PIPELINING', '8BITMIME', 'SMTPUTF8', 'ENHANCEDSTATUSCODES', 'SIZE', 'CHUNKING', 'DSN'] as const;

export const ehloDiscardSchema = z.strictObject({
  clients: z.array(z.string().refine(isRange, { message: 'expected an IP address or CIDR range such as 192.168.1.50 or 192.168.10.0/24' })).min(1).describe('client addresses or CIDR ranges'),
  keywords: z.array(z.string().transform((k) => k.toUpperCase()).pipe(z.enum(EHLO_KEYWORDS))).min(1).describe(`EHLO keywords not announced to them: ${EHLO_KEYWORDS.join(', ')}`),
  ports: z.array(z.number().int().min(0).max(65535)).default([]).describe('only on listeners with these ports; empty = every listener'),
});

export const devicesSchema = z.strictObject({
  discardEhloKeywords: z.array(ehloDiscardSchema).default([]).describe('EHLO keywords (STARTTLS, PIPELINING…) not announced to listed clients, for devices that break on them'),
  tlsFailureMemory: duration().prefault('0s').describe('after a failed TLS handshake, do not offer STARTTLS to that client address for this long (e.g. "1d"; 0 = off): the device then sends in plain text on the LAN'),
  pregreetWait: duration().prefault('0s').describe('hold the greeting this long for clients outside the relay list and refuse one that talks first (421), as Postfix\'s postscreen; relay-list clients are never held; 0 = off (devices that talk early are then answered)'),
  repairHeaders: z.boolean().default(true).describe('add a missing Date/Message-ID, remove Bcc, fix a From display name Exchange misreads, encode raw 8-bit Subject/From; each repair is logged and kept in history'),
});

export type DevicesConfig = z.infer<typeof devicesSchema>;
