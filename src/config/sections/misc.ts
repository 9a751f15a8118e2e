/** Pickup folder, logging, web console and history settings. */
import { z } from 'zod';
import { duration } from '../units.ts';
import { secretSchema } from '../secret.ts';

export const pickupSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('watch mailroot/pickup/ for message files (IIS Pickup folder)'),
  interval: duration().prefault('2s').describe('how often the folder is scanned (files are also picked up on change events)'),
  settle: duration().prefault('1s').describe('a file must be unchanged this long before it is taken (still being written otherwise)'),
});

export const logSchema = z.strictObject({
  level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info').describe('least severe level written'),
  format: z.enum(['auto', 'pretty', 'text', 'json']).default('auto').describe('auto: pretty on a terminal, else text (one line per event: ISO time, level, message; journald priorities under systemd); json for log shippers'),
});

export const webSchema = z.strictObject({
  enabled: z.boolean().default(true).describe('serve the web console'),
  address: z.string().default('127.0.0.1').describe('address for the console; a non-loopback address needs adminPassword'),
  port: z.number().int().min(1).max(65535).default(8025).describe('TCP port for the console'),
  adminUser: z.string().default('admin').describe('console login name'),
  adminPassword: secretSchema.optional().describe('scrypt hash of the console password (make one with `smarthost users hash`)'),
  trustProxyUserHeader: z.string().optional().describe('take the user from this header set by a reverse proxy that authenticates (e.g. X-Remote-User)'),
  secureCookies: z.boolean().default(false).describe('mark session cookies Secure (set when the console is behind HTTPS)'),
  health: z.strictObject({
    queueAge: duration().prefault('30m').describe('/healthz and `smarthost status` say "degraded" when the oldest queued message is older than this'),
  }).prefault({}).describe('thresholds of /healthz and `smarthost status`'),
});

export const historySchema = z.strictObject({
  store: z.enum(['sqlite', 'postgres', 'off']).default('sqlite').describe('sqlite: a file under mailroot; postgres: shared by several relays'),
  postgresUrl: secretSchema.optional().describe('postgres://user:pass@host/db, for store: postgres'),
  retention: duration().prefault('90d').describe('keep history this long'),
});

export type PickupConfig = z.infer<typeof pickupSchema>;
export type LogConfig = z.infer<typeof logSchema>;
export type WebConfig = z.infer<typeof webSchema>;
export type HistoryConfig = z.infer<typeof historySchema>;
