/** Inbound limits (IIS: Messages tab and General → connections). */
import { z } from 'zod';
import { duration, size } from '../units.ts';

export const limitsSchema = z.strictObject({
  maxMessageSize: size().prefault('35MB').describe('largest message accepted, advertised with SIZE (Microsoft 365 default: 35 MB)'),
  maxRecipients: z.number().int().min(1).default(100).describe('recipients per message; more get 452 4.5.3 (IIS default 100)'),
  maxCommandLength: z.number().int().min(512).default(2048).describe('longest command line in octets; longer gets 500 5.5.2'),
  maxConnections: z.number().int().min(1).default(500).describe('concurrent inbound connections in all'),
  maxConnectionsPerClient: z.number().int().min(1).default(20).describe('concurrent connections from one client address'),
  idleTimeout: duration().prefault('300s').describe('close a connection idle this long (421 4.4.2)'),
  commandDeadline: duration().prefault('300s').describe('longest a single command may take to arrive'),
  dataDeadline: duration().prefault('600s').describe('longest the DATA phase of one message may take'),
  bareLineEndings: z.enum(['normalize', 'reject']).default('normalize').describe('bare CR or LF inside a message: normalize to CRLF (Microsoft 365 refuses bare LF with 550 5.6.11) or reject with 550 5.6.11'),
  nulBytes: z.enum(['reject', 'strip']).default('reject').describe('NUL bytes inside a message, which RFC 5322 does not allow: reject the message with 554 5.6.0 or strip them (Postfix message_reject_characters / message_strip_characters)'),
});

export type LimitsConfig = z.infer<typeof limitsSchema>;
