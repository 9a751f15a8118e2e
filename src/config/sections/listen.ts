/** Inbound SMTP listeners and their TLS (IIS: General tab → IP address / Access → Secure communication). */
import { z } from 'zod';
import { isRange } from '../../core/cidr.ts';

export const listenerSchema = z.strictObject({
  address: z.string().default('127.0.0.1').describe('IP address to listen on; "0.0.0.0" or "::" for all (then set access lists!)'),
  port: z.number().int().min(1).max(65535).default(2525).describe('TCP port; 25 needs root or CAP_NET_BIND_SERVICE'),
  tls: z.enum(['starttls', 'implicit', 'none']).default('starttls').describe('starttls: offer STARTTLS; implicit: TLS from the first byte (port 465 style); none: plain only'),
  tlsProfile: z.enum(['modern', 'intermediate', 'legacy']).default('intermediate').describe('TLS versions and ciphers offered: modern = TLS 1.3; intermediate = TLS 1.2+; legacy = TLS 1.0+ with the old RSA suites old printers need (LAN only)'),
  requireTls: z.boolean().default(false).describe('refuse MAIL FROM until the client has used STARTTLS (IIS "Require TLS encryption")'),
  proxyProtocol: z.array(z.string().refine(isRange, { message: 'expected an IP address or CIDR range' })).default([]).describe('accept a PROXY protocol header (v1 or v2) only from these load-balancer addresses/CIDRs; empty = off'),
});

export const tlsSchema = z.strictObject({
  cert: z.string().optional().describe('PEM certificate chain file for STARTTLS / implicit TLS'),
  key: z.string().optional().describe('PEM private key file'),
  selfSigned: z.boolean().default(true).describe('when no cert is given, generate a self-signed one on first start (stored under mailroot/tls/)'),
  expiryWarningDays: z.number().int().min(0).default(21).describe('log a warning this many days before the certificate expires'),
});

export type ListenerConfig = z.infer<typeof listenerSchema>;
export type TlsConfig = z.infer<typeof tlsSchema>;
