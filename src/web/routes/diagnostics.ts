/** /api/diagnostics: the SPF, DNS and header tools, when serve hands them in; 404 with a reason otherwise. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

const domain = z.string().min(1).max(253).regex(/^[A-Za-z0-9.-]+$/, 'a domain name like example.com');
const spfBody = z.strictObject({ domain, ip: z.string().max(45).optional() });
const dnsBody = z.strictObject({ domain });
const headersBody = z.strictObject({ text: z.string().min(1).max(200_000) });

export default async function diagnosticsRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  const d = services.diagnostics ?? {};
  const missing = (tool: string): never => {
    throw new HttpError(404, `the ${tool} tool is not available in this relay`);
  };

  app.get('/api/diagnostics', async () => ({ spf: Boolean(d.spfCheck), dns: Boolean(d.dnsM365), headers: Boolean(d.headers) }));

  app.post('/api/diagnostics/spf', async (request) => {
    const input = parseInput(spfBody, request.body);
    audit(logger, request, 'diagnostics: SPF check', input);
    return { result: await (d.spfCheck ?? missing('SPF'))(input) };
  });

  app.post('/api/diagnostics/dns', async (request) => {
    const input = parseInput(dnsBody, request.body);
    audit(logger, request, 'diagnostics: DNS check', input);
    return { result: await (d.dnsM365 ?? missing('DNS'))(input) };
  });

  app.post('/api/diagnostics/headers', async (request) => {
    const input = parseInput(headersBody, request.body);
    audit(logger, request, 'diagnostics: header analysis', { bytes: input.text.length });
    return { result: await (d.headers ?? missing('header analysis'))(input) };
  });
}
