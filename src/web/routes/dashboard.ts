/** /api/dashboard: one call for the first page — counts over time, last errors in words, upstreams, queue, history health. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { checkHealth } from '../health.ts';
import { parseInput } from '../http.ts';
import type { RouteOptions } from './options.ts';

const query = z.object({ hours: z.coerce.number().min(1).max(24 * 90).default(24) });

export default async function dashboardRoutes(app: FastifyInstance, { services, clock }: RouteOptions): Promise<void> {
  app.get('/api/dashboard', async (request) => {
    const { hours } = parseInput(query, request.query);
    const since = new Date(clock.now() - hours * 3_600_000);
    // History may be down: the dashboard still shows the queue and upstreams, and says why.
    const [stats, errors, queue, upstreams, health] = await Promise.allSettled([
      services.history.stats(since),
      services.history.recentErrors(10),
      services.queue.list(),
      services.upstreams.status(),
      checkHealth(services, clock.now()),
    ]);
    const q = queue.status === 'fulfilled' ? queue.value : [];
    const oldest = q.reduce((min, e) => Math.min(min, Date.parse(e.receivedAt) || Infinity), Infinity);
    return {
      since: since.toISOString(),
      stats: stats.status === 'fulfilled' ? stats.value : [],
      recentErrors: errors.status === 'fulfilled' ? errors.value : [],
      queue: {
        size: q.length,
        deferred: q.filter((e) => e.state === 'deferred').length,
        oldestAgeSeconds: Number.isFinite(oldest) ? Math.round((clock.now() - oldest) / 1000) : 0,
      },
      upstreams: upstreams.status === 'fulfilled' ? upstreams.value : [],
      history: services.history.health(),
      // The same words as /healthz: ok / degraded / down and each check's reason.
      health: health.status === 'fulfilled' ? health.value : undefined,
      refusals: services.refusals ? Object.values(services.refusals.counts()).reduce((a, b) => a + b, 0) : undefined,
      devices: services.devices?.status(),
      problems: [stats, errors, queue, upstreams].flatMap((r) => (r.status === 'rejected' ? [String((r.reason as Error)?.message ?? r.reason)] : [])),
    };
  });
}
