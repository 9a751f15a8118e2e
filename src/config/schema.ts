/**
 * The whole configuration: one zod schema, a default and one line of help per key.
 * An empty file is a complete, safe configuration: loopback listener on port 2525, spool in
 * ./mailroot, relaying for loopback clients only.
 */
import path from 'node:path';
import { z } from 'zod';
import { listenerSchema, tlsSchema } from './sections/listen.ts';
import { accessSchema } from './sections/access.ts';
import { authSchema } from './sections/auth.ts';
import { limitsSchema } from './sections/limits.ts';
import { upstreamSchema } from './sections/upstreams.ts';
import { deliverySchema, ndrSchema } from './sections/delivery.ts';
import { sendersSchema } from './sections/senders.ts';
import { historySchema, logSchema, pickupSchema, webSchema } from './sections/misc.ts';

export const configSchema = z.strictObject({
  hostname: z.string().optional().describe('name in the SMTP banner, EHLO and Received headers; default: this machine\'s name'),
  mailroot: z.string().default('./mailroot').describe('folder holding the queue, pickup and badmail folders (relative to the config file)'),
  listen: z.array(listenerSchema).min(1).prefault([{}]).describe('SMTP listeners'),
  tls: tlsSchema.prefault({}).describe('certificate for STARTTLS and implicit TLS'),
  access: accessSchema.prefault({}).describe('connection control and relay restrictions'),
  auth: authSchema.prefault({}).describe('client authentication'),
  limits: limitsSchema.prefault({}).describe('message and connection limits'),
  upstreams: z.array(upstreamSchema).default([]).describe('smart hosts, tried in order; with none, mail waits in the queue'),
  senders: sendersSchema,
  delivery: deliverySchema.prefault({}).describe('retries, expiry and masquerading'),
  ndr: ndrSchema.prefault({}).describe('non-delivery reports'),
  pickup: pickupSchema.prefault({}).describe('pickup folder'),
  log: logSchema.prefault({}).describe('logging'),
  web: webSchema.prefault({}).describe('web console'),
  history: historySchema.prefault({}).describe('message history'),
}).superRefine((cfg, ctx) => {
  const names = new Set<string>();
  cfg.upstreams.forEach((u, i) => {
    if (names.has(u.name)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'name'], message: `upstream name "${u.name}" is used twice` });
    names.add(u.name);
    if (u.auth === 'basic' && (!u.username || !u.password)) ctx.addIssue({ code: 'custom', path: ['upstreams', i, 'auth'], message: 'basic auth needs username and password' });
  });
  cfg.senders.forEach((r, i) => {
    if (r.upstream && !names.has(r.upstream)) ctx.addIssue({ code: 'custom', path: ['senders', i, 'upstream'], message: `no upstream named "${r.upstream}"` });
  });
  if (cfg.ndr.upstream && !names.has(cfg.ndr.upstream)) ctx.addIssue({ code: 'custom', path: ['ndr', 'upstream'], message: `no upstream named "${cfg.ndr.upstream}"` });
  // a setting that would do nothing is refused, not ignored
  if ((cfg.ndr.to === 'sender' || cfg.ndr.to === 'off') && cfg.ndr.adminCopy) ctx.addIssue({ code: 'custom', path: ['ndr', 'adminCopy'], message: `ndr.adminCopy is set but ndr.to is "${cfg.ndr.to}", so no copy would be sent: remove ndr.to (the copy is then sent, as IIS's "Send copy of NDR to" does) or set it to both or admin` });
  if ((cfg.ndr.to === 'admin' || cfg.ndr.to === 'both') && !cfg.ndr.adminCopy) ctx.addIssue({ code: 'custom', path: ['ndr', 'adminCopy'], message: `ndr.to is "${cfg.ndr.to}" but no adminCopy address is set` });
});

/** The validated configuration, plus where it came from. Internals receive it frozen. */
export type Config = z.infer<typeof configSchema> & {
  /** Absolute path of the config file, or '(defaults)'. */
  source: string;
  /** Absolute mailroot (resolved against the config file's folder). */
  mailrootPath: string;
  hostnameResolved: string;
};

/** The folder relative file names in a config (certificates, keys, CA, users file) resolve against. */
export function configDirOf(config: Pick<Config, 'source'>): string {
  return config.source === '(defaults)' ? process.cwd() : path.dirname(config.source);
}
