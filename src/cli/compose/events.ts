/**
 * The relay's event bus: the spool and the delivery manager emit QueueEvents; history, metrics and
 * the console's live view listen. A listener that throws is logged and never disturbs the mail.
 */
import type { Logger } from '../../core/logger.ts';
import type { QueueEvent } from '../../core/types.ts';

export interface EventBus {
  emit(event: QueueEvent): void;
  subscribe(listener: (event: QueueEvent) => void): () => void;
}

export function createEventBus(logger: Logger): EventBus {
  const listeners = new Set<(event: QueueEvent) => void>();
  return {
    emit(event) {
      for (const l of listeners) {
        try {
          l(event);
        } catch (err) {
          logger.warn({ err }, 'an event listener failed');
        }
      }
    },
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
