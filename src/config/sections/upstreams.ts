/**
 * Upstreams (IIS: Delivery → Advanced → Smart host, and Outbound Security). Each is one URL:
 *
 *   smtp+starttls://host[:port]   STARTTLS required (default port 587) — the default and the safe choice
 *   smtps://host[:port]           implicit TLS (default port 465)
 *   smtp://host[:port]            no TLS at all (default port 25); only when you mean it
 *   graph://TENANT/MAILBOX        Microsoft Graph sendMail (see docs/microsoft-365.md)
 *   connector://DOMAIN            Microsoft 365 connector / direct send to the tenant's MX endpoint
 *
 * Upstreams are tried in the order listed (failover): the first that answers takes the message.
 *
 * Microsoft 365 (docs/microsoft-365.md): `auth: xoauth2` + `oauth:` for SMTP AUTH with OAuth2,
 * `graph://` + `oauth:` (+ `graph:`) for Graph sendMail, `connector://` (+ `connector:`) for the
 * tenant's MX endpoint; `mailbox` and `sendAs` say which From addresses the upstream may use.
 */
import { z } from 'zod';
import { secretSchema } from '../secret.ts';
import { size } from '../units.ts';

/** OAuth2 settings (Microsoft identity platform v2): app-only (client credentials) or delegated (device code). */
export const oauthSchema = z.strictObject({
  mode: z.enum(['app', 'delegated']).default('app').describe('app: the app signs in as itself (client secret or certificate); delegated: a user signs in once with "smarthost m365 login"'),
  tenant: z.string().min(1).optional().describe('directory (tenant) ID or a verified domain, e.g. contoso.onmicrosoft.com; for graph:// the URL\'s tenant is used'),
  clientId: z.string().min(1).describe('Application (client) ID of the Entra ID app registration'),
  clientSecret: secretSchema.optional().describe('client secret value (app mode): a string, { env: NAME } or { file: PATH }; secrets expire, a certificate is preferred'),
  certificate: z.string().optional().describe('PEM file of the certificate uploaded to the app registration (app mode, instead of a secret)'),
  privateKey: z.string().optional().describe('PEM file of the certificate\'s private key; default: the certificate file itself'),
  thumbprint: z.string().regex(/^[0-9A-Fa-f:]{40,}$/, 'hex digits').optional().describe('certificate thumbprint as shown in Entra ID (SHA-1); default: computed from the certificate'),
  authority: z.string().url().default('https://login.microsoftonline.com').describe('sign-in host (change only for national clouds or tests)'),
  scope: z.string().optional().describe('token scope; default https://outlook.office365.com/.default (SMTP) or https://graph.microsoft.com/.default (Graph); delegated SMTP uses https://outlook.office.com/SMTP.Send'),
  tokenCache: z.string().optional().describe('file holding the delegated sign-in (refresh token), owner-only; default MAILROOT/m365/NAME.tokens.json'),
});

/** Microsoft Graph transport settings (graph:// upstreams). */
export const graphSchema = z.strictObject({
  base: z.string().url().default('https://graph.microsoft.com').describe('Graph host (change only for national clouds or tests)'),
  largeMessages: z.enum(['upload', 'refuse']).default('upload').describe('messages over the 4 MB request limit: upload (draft + upload session + send, needs Mail.ReadWrite) or refuse with that reason'),
  maxRequestSize: size().prefault('4MB').describe('Graph\'s request size limit; larger messages take the upload path'),
});

/** Connector / direct-send settings (connector:// upstreams). */
export const connectorSchema = z.strictObject({
  host: z.string().optional().describe('MX endpoint to deliver to, e.g. contoso-com.mail.protection.outlook.com or contoso-com.j-v1.mx.microsoft; default: looked up in DNS (MX of the URL\'s domain)'),
  port: z.number().int().min(1).max(65535).default(25).describe('port of the MX endpoint (always 25 at Microsoft)'),
  clientCertificate: z.string().optional().describe('PEM certificate presented in TLS, for a certificate-based inbound connector (its CN/SAN must be an accepted domain)'),
  clientKey: z.string().optional().describe('PEM private key of clientCertificate; default: the certificate file itself'),
});

export const UPSTREAM_SCHEMES = ['smtp+starttls', 'smtps', 'smtp', 'graph', 'connector'] as const;

export const upstreamSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, "_", "." and "-" only').describe('a short name used in logs, the console and sender rules'),
  url: z.string().refine((u) => UPSTREAM_SCHEMES.some((s) => u.startsWith(`${s}://`)), {
    message: `must start with one of ${UPSTREAM_SCHEMES.map((s) => `${s}://`).join(', ')}`,
  }).describe('where to deliver, e.g. smtp+starttls://smtp.office365.com:587'),
  auth: z.enum(['none', 'basic', 'xoauth2']).optional().describe('upstream authentication; default basic when a username is set, none otherwise'),
  username: z.string().optional().describe('account to authenticate as (for Microsoft 365, the mailbox address)'),
  password: secretSchema.optional().describe('password for basic auth: a string, { env: NAME } or { file: PATH }'),
  verifyCertificate: z.boolean().default(true).describe('check the upstream\'s TLS certificate (leave on)'),
  ca: z.string().optional().describe('PEM file of extra CA certificates to trust for this upstream'),
  heloName: z.string().optional().describe('name to give in EHLO (IIS "Fully-qualified domain name"); default: hostname'),
  // 10 and 100 (issue 14.9): measured faster than 5 and 20 under load (docs/performance.md), and safe for
  // Microsoft 365, whose own caps apply whatever is set here: 3 SMTP AUTH connections per mailbox
  // (src/m365/quota.ts), 4 Graph requests per app and mailbox, 30 messages a minute. Exchange documents
  // no limit on messages per SMTP AUTH session (research/m365-quotas-ndr.md).
  maxConnections: z.number().int().min(1).default(10).describe('parallel connections to this upstream (Microsoft 365 SMTP AUTH: at most 3 per mailbox, shared by the upstreams signing in as it; Graph: at most 4 requests at once per app and mailbox, shared; whatever is set here)'),
  maxMessagesPerConnection: z.number().int().min(1).default(100).describe('messages sent over one connection before it is renewed (IIS\'s default was 20)'),
  maxRecipientsPerMessage: z.number().int().min(1).optional().describe('split messages with more recipients into several submissions (Microsoft 365: 500)'),
  maxMessagesPerMinute: z.number().int().min(1).optional().describe('pace submissions through this upstream (Microsoft 365 SMTP AUTH: 30 per mailbox)'),
  maxRecipientsPerDay: z.number().int().min(1).optional().describe('recipients per rolling 24 h; more wait in the queue (Microsoft 365: 10,000)'),
  timeout: z.number().int().min(1).default(120).describe('seconds to wait for each upstream reply'),
  mailbox: z.string().optional().describe('Microsoft 365 mailbox this upstream sends through (XOAUTH2 user=, Graph /users/MAILBOX); default: username, or the graph:// URL\'s mailbox'),
  sendAs: z.array(z.string()).default([]).describe('From addresses the mailbox has Send As (or Send on Behalf) on, besides its own: exact or *@domain; checked before the client hears 250'),
  oauth: oauthSchema.optional().describe('OAuth2 sign-in for auth: xoauth2 and graph:// upstreams'),
  graph: graphSchema.optional().describe('Microsoft Graph settings (graph:// upstreams)'),
  connector: connectorSchema.optional().describe('tenant MX endpoint settings (connector:// upstreams)'),
  ndr: z.strictObject({
    from: z.string().optional().describe('address this upstream sends delivery reports as; Microsoft 365 SMTP AUTH / Graph: must be the mailbox or one in sendAs (default: the mailbox)'),
  }).optional().describe('delivery reports sent through this upstream (docs/microsoft-365.md, NDRs)'),
}).superRefine((u, ctx) => {
  const isGraph = u.url.startsWith('graph://');
  if ((u.auth === 'xoauth2' || isGraph) && !u.oauth) ctx.addIssue({ code: 'custom', path: ['oauth'], message: `${isGraph ? 'a graph:// upstream' : 'auth: xoauth2'} needs an oauth: section (tenant, clientId, and a clientSecret or certificate)` });
  if (u.oauth && u.oauth.mode === 'app' && !u.oauth.clientSecret && !u.oauth.certificate) ctx.addIssue({ code: 'custom', path: ['oauth'], message: 'oauth mode app needs clientSecret or certificate' });
  if (u.oauth && !u.oauth.tenant && !isGraph) ctx.addIssue({ code: 'custom', path: ['oauth', 'tenant'], message: 'oauth needs tenant (directory ID or domain)' });
  if (u.auth === 'xoauth2' && !u.mailbox && !u.username) ctx.addIssue({ code: 'custom', path: ['mailbox'], message: 'auth: xoauth2 needs mailbox (the address to authenticate as)' });
  if (isGraph && !/^graph:\/\/[^/]+\/[^/@]+@[^/]+$/.test(u.url)) ctx.addIssue({ code: 'custom', path: ['url'], message: 'graph:// URL must be graph://TENANT/MAILBOX, e.g. graph://contoso.onmicrosoft.com/scanner@contoso.com' });
});

export type OAuthConfig = z.infer<typeof oauthSchema>;
export type GraphConfig = z.infer<typeof graphSchema>;
export type ConnectorConfig = z.infer<typeof connectorSchema>;

export type UpstreamConfig = z.infer<typeof upstreamSchema>;
