/**
 * /metrics (Prometheus text) and /healthz (JSON). Both answer without a login, as exporters do:
 * they carry counts, states and reasons, never addresses, subjects or secrets.
 *
 * /healthz is for a load balancer: 200 while the relay accepts mail (status "ok" or "degraded"),
 * 503 when it is "down" (health.ts says what each word means). /healthz?strict is for monitoring:
 * 200 only when "ok", 503 for "degraded" too, so Uptime Kuma or check_http alerts on a parked
 * upstream or an old queue. Both carry the same body: the status and each check with its reason.
 */
import type { FastifyInstance } from 'fastify';
import { checkHealth, withoutAddresses } from '../health.ts';
import type { Metrics } from '../metrics.ts';
import type { RouteOptions } from './options.ts';

export default async function metricsRoutes(app: FastifyInstance, { services, metrics, clock }: RouteOptions & { metrics: Metrics }): Promise<void> {
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    return metrics.render(services);
  });

  app.get('/healthz', async (request, reply) => {
    const strict = Object.hasOwn((request.query ?? {}) as object, 'strict');
    const report = await checkHealth(services, clock.now());
    reply.code(report.status === 'down' || (strict && report.status !== 'ok') ? 503 : 200);
    return withoutAddresses(report);
  });
}
