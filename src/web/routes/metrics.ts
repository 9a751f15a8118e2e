/**
 * /metrics (Prometheus text) and /healthz (JSON). Both answer without a login, as exporters do:
 * they carry counts and states, never addresses, subjects or secrets.
 * /healthz is 200 when the queue can be listed, 503 otherwise; history trouble is reported but
 * does not make the relay unhealthy (mail still flows).
 */
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../metrics.ts';
import type { RouteOptions } from './options.ts';

export default async function metricsRoutes(app: FastifyInstance, { services, metrics }: RouteOptions & { metrics: Metrics }): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    return metrics.render(services);
  });

  app.get('/healthz', async (_request, reply) => {
    let queue: { ok: boolean; size?: number; error?: string };
    try {
      queue = { ok: true, size: (await services.queue.list()).length };
    } catch (err) {
      queue = { ok: false, error: (err as Error).message };
    }
    const history = services.history.health();
    const upstreams = await Promise.resolve(services.upstreams.status()).catch(() => []);
    reply.code(queue.ok ? 200 : 503);
    return {
      status: queue.ok ? 'ok' : 'failing',
      queue,
      history: { ok: history.ok, summary: history.summary },
      upstreams: upstreams.map((u) => ({ name: u.name, state: u.state })),
    };
  });
}
