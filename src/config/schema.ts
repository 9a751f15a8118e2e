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
import { routeSchema, routingSchema } from './sections/routing.ts';
import { historySchema, logSchema, pickupSchema, webSchema } from './sections/misc.ts';
import { devicesSchema } from './sections/devices.ts';
import { queueSchema } from './sections/queue.ts';

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
  routes: z.array(routeSchema).default([]).describe('named routes: upstreams in failover order, sender policy, NDR sender (docs/routing.md)'),
  routing: routingSchema.prefault({}).describe('rules choosing the route per message or recipient; first match wins (docs/routing.md)'),
  delivery: deliverySchema.prefault({}).describe('retries, expiry and masquerading'),
  ndr: ndrSchema.prefault({}).describe('non-delivery reports'),
  pickup: pickupSchema.prefault({}).describe('pickup folder'),
  log: logSchema.prefault({}).describe('logging'),
  web: webSchema.prefault({}).describe('web console'),
  history: historySchema.prefault({}).describe('message history'),
  devices: devicesSchema.prefault({}).describe('compatibility with old printers, scanners and programs (docs/devices.md)'),
  queue: queueSchema.prefault({}).describe('the queue (spool) on disk'),
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
  const routeNames = new Set<string>();
  cfg.routes.forEach((r, i) => {
    if (routeNames.has(r.name)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'name'], message: `route name "${r.name}" is used twice` });
    routeNames.add(r.name);
    r.upstreams.forEach((u, j) => {
      if (!names.has(u)) ctx.addIssue({ code: 'custom', path: ['routes', i, 'upstreams', j], message: `no upstream named "${u}"` });
    });
  });
  cfg.routing.rules.forEach((r, i) => {
    if (!routeNames.has(r.route)) ctx.addIssue({ code: 'custom', path: ['routing', 'rules', i, 'route'], message: `no route named "${r.route}" (routes: lists ${[...routeNames].join(', ') || 'none'})` });
  });
  if (cfg.routing.default && !routeNames.has(cfg.routing.default)) ctx.addIssue({ code: 'custom', path: ['routing', 'default'], message: `no route named "${cfg.routing.default}"` });
  if (cfg.ndr.upstream && !names.has(cfg.ndr.upstream)) ctx.addIssue({ code: 'custom', path: ['ndr', 'upstream'], message: `no upstream named "${cfg.ndr.upstream}"` });
  // A client told STARTTLS does not exist could never send on a listener that requires TLS.
  cfg.devices.discardEhloKeywords.forEach((d, i) => {
    if (!d.keywords.includes('STARTTLS')) return;
    for (const l of cfg.listen) {
      if (l.requireTls && l.tls === 'starttls' && (!d.ports.length || d.ports.includes(l.port))) {
        ctx.addIssue({ code: 'custom', path: ['devices', 'discardEhloKeywords', i, 'keywords'], message: `STARTTLS is withheld from ${d.clients.join(', ')} on ${l.address}:${l.port}, which has requireTls: those clients could never send there (limit the entry with ports, or turn requireTls off)` });
      }
    }
  });
  // a setting that would do nothing is refused, not ignored
  if ((cfg.ndr.to === 'sender' || cfg.ndr.to === 'off') && cfg.ndr.adminCopy) ctx.addIssue({ code: 'custom', path: ['ndr', 'adminCopy'], message: `ndr.adminCopy is set but ndr.to is "${cfg.ndr.to}", so no copy would be sent: remove ndr.to (the copy is then sent, as IIS's "Send copy of NDR to" does) or set it to both or admin` });
  if ((cfg.ndr.to === 'admin' || cfg.ndr.to === 'both') && !cfg.ndr.adminCopy) ctx.addIssue({ code: 'custom', path: ['ndr', 'adminCopy'], message: `ndr.to is "${cfg.ndr.to}" but no adminCopy address is set` });
});

/** The validated configuration, plus where it came from. Internals receive it frozen. */
export type Config = z.infer<typeof configSchema> & {
  /** Absolute path of the config file, or '(defaults)' / '(defaults and environment)' when there is none. */
  source: string;
  /** Absolute mailroot (resolved against the config file's folder). */
  mailrootPath: string;
  hostnameResolved: string;
};

/** The folder relative file names in a config (certificates, keys, CA, users file) resolve against. */
export function configDirOf(config: Pick<Config, 'source'>): string {
  const file = configFileOf(config);
  return file ? path.dirname(file) : process.cwd();
}

/** The config file a config was read from, or undefined when it came from the defaults (and environment) alone. */
export function configFileOf(config: Pick<Config, 'source'>): string | undefined {
  return config.source.startsWith('(') ? undefined : config.source;
}
