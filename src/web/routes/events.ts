/**
 * /api/events: live queue events as Server-Sent Events, so pages update without reloading.
 *
 * Each QueueEvent becomes `event: queue` with a JSON body holding ids, states, outcomes and the
 * envelope's addresses (no secrets exist in events). A comment line every 15 s keeps proxies from
 * closing the stream; the browser's EventSource reconnects on its own after a drop. A client that
 * reads too slowly loses events rather than growing memory (writes are skipped while the socket's
 * buffer is full); the page re-fetches its data on each event anyway. Closing the console ends
 * every open stream, so a shutdown never waits for a browser tab.
 */
import type { FastifyInstance } from 'fastify';
import type { QueueEvent } from '../../core/types.ts';
import type { RouteOptions } from './options.ts';

const HEARTBEAT_MS = 15_000;

export default async function eventRoutes(app: FastifyInstance, { services }: RouteOptions): Promise<void> {
  // Open streams never go idle, so closing the console would wait for browsers to leave: end them first.
  const open = new Set<NodeJS.WritableStream & { end(): void }>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });

  app.get('/api/events', (request, reply) => {
    reply.hijack();
    const res = reply.raw;
    open.add(res);
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': connected\n\n');
    const send = (event: QueueEvent): void => {
      if (res.writableNeedDrain) return;
      res.write(`event: queue\ndata: ${JSON.stringify(event)}\n\n`);
    };
    const unsubscribe = services.events.subscribe(send);
    // Refusals are not queue events: their own event name, so the Refusals page updates live.
    const unsubscribeRefusals = services.refusals?.subscribe?.((r) => {
      if (!res.writableNeedDrain) res.write(`event: refusal\ndata: ${JSON.stringify(r)}\n\n`);
    });
    const beat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
    beat.unref();
    request.raw.on('close', () => {
      open.delete(res);
      clearInterval(beat);
      unsubscribe();
      unsubscribeRefusals?.();
    });
  });
}
