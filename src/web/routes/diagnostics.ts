/**
 * /api/diagnostics: the CLI's SPF (check, lint, explain, build), DNS (Microsoft 365 records,
 * propagation) and header tools, when serve hands them in; 404 with a reason otherwise. Each answers
 * `{ result }`, the tool's report in words (cli/compose/diagnostics.ts: a verdict, headings, tables).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

const domain = z.string().trim().min(1).max(253).regex(/^[A-Za-z0-9._-]+$/, 'a domain name like example.com');
const ip = z.string().trim().max(45).regex(/^[0-9A-Fa-f:.]+$/, 'an IPv4 or IPv6 address');
const optionalIp = z.preprocess((v) => (v === '' ? undefined : v), ip.optional());
const spfBody = z.strictObject({ domain, ip: optionalIp });
const dnsBody = z.strictObject({ domain });
const blank = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const m365Body = z.strictObject({
  domain,
  tenantPrefix: z.preprocess(blank, z.string().trim().regex(/^[A-Za-z0-9-]{1,63}$/, 'the part before .onmicrosoft.com, e.g. contoso').optional()),
  verification: z.preprocess(blank, z.string().trim().regex(/^MS=ms\d+$/i, 'the TXT value from the admin center, e.g. MS=ms12345678').optional()),
});
const TYPES = ['A', 'AAAA', 'MX', 'TXT', 'CNAME', 'NS', 'SOA', 'SRV', 'PTR', 'CAA'] as const;
const propagationBody = z.strictObject({ domain, type: z.enum(TYPES).default('TXT'), expect: z.preprocess(blank, z.string().max(2000).optional()) });
/** Lists arrive as text typed by the admin: split on commas and spaces. */
const words = z.preprocess((v) => (typeof v === 'string' ? v.split(/[\s,]+/).filter(Boolean) : v), z.array(z.string().max(253)).max(30).default([]));
const buildBody = z.strictObject({ domain, include: words, ip: words, mx: z.boolean().default(false), all: z.enum(['-all', '~all']).default('-all') });
const headersBody = z.strictObject({ text: z.string().min(1).max(200_000) });

export default async function diagnosticsRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  const d = services.diagnostics ?? {};
  const missing = (tool: string): never => {
    throw new HttpError(404, `the ${tool} tool is not available in this relay`);
  };

  app.get('/api/diagnostics', async () => ({
    spf: Boolean(d.spfCheck), spfExplain: Boolean(d.spfExplain), spfBuild: Boolean(d.spfBuild),
    dns: Boolean(d.dnsM365), propagation: Boolean(d.dnsPropagation), headers: Boolean(d.headers),
  }));

  app.post('/api/diagnostics/spf', async (request) => {
    const input = parseInput(spfBody, request.body);
    audit(logger, request, 'diagnostics: SPF check', input);
    return { result: await (d.spfCheck ?? missing('SPF'))(input) };
  });

  app.post('/api/diagnostics/spf-explain', async (request) => {
    const input = parseInput(dnsBody, request.body);
    audit(logger, request, 'diagnostics: SPF explain', input);
    return { result: await (d.spfExplain ?? missing('SPF explain'))(input) };
  });

  app.post('/api/diagnostics/spf-build', async (request) => {
    const input = parseInput(buildBody, request.body);
    audit(logger, request, 'diagnostics: SPF build', { domain: input.domain });
    return { result: await (d.spfBuild ?? missing('SPF build'))(input) };
  });

  app.post('/api/diagnostics/dns', async (request) => {
    const input = parseInput(m365Body, request.body);
    audit(logger, request, 'diagnostics: DNS check', input);
    return { result: await (d.dnsM365 ?? missing('DNS'))(input) };
  });

  app.post('/api/diagnostics/propagation', async (request) => {
    const input = parseInput(propagationBody, request.body);
    audit(logger, request, 'diagnostics: DNS propagation', input);
    return { result: await (d.dnsPropagation ?? missing('DNS propagation'))(input) };
  });

  app.post('/api/diagnostics/headers', async (request) => {
    const input = parseInput(headersBody, request.body);
    audit(logger, request, 'diagnostics: header analysis', { bytes: input.text.length });
    return { result: await (d.headers ?? missing('header analysis'))(input) };
  });
}
