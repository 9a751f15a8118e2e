/** /api/refusals: what the relay refused lately (client, time, reason, the reply it heard) and the counts by reason. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

const query = z.object({ limit: z.coerce.number().int().min(1).max(500).default(200), client: z.string().max(64).optional() });

export default async function refusalRoutes(app: FastifyInstance, { services }: RouteOptions): Promise<void> {
  app.get('/api/refusals', async (request) => {
    const { limit, client } = parseInput(query, request.query);
    const r = services.refusals;
    if (!r) return { available: false, refusals: [], counts: {} };
    const list = r.recent(500).filter((x) => !client || x.client.includes(client.trim())).slice(0, limit);
    return { available: true, refusals: list, counts: r.counts() };
  });
}
