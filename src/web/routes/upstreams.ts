/** /api/upstreams: each upstream's state (ok, parked and why, token expiry) and releasing a parked one. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { audit } from '../auth.ts';
import { HttpError, parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

const nameParam = z.object({ name: z.string().min(1).max(100) });

export default async function upstreamRoutes(app: FastifyInstance, { services, logger }: RouteOptions): Promise<void> {
  app.get('/api/upstreams', async () => ({ upstreams: await services.upstreams.status() }));
  // Microsoft 365 counts per sending mailbox: usage against the limits, and when a held one resumes
  app.get('/api/quotas', async () => ({ quotas: (await services.upstreams.quotas?.()) ?? [] }));

  app.post('/api/upstreams/:name/release', async (request) => {
    const { name } = parseInput(nameParam, request.params);
    audit(logger, request, 'release upstream', { upstream: name });
    if (!(await services.upstreams.release(name))) throw new HttpError(404, `no upstream named ${name}`);
    return { ok: true };
  });
}
