/** What every route plugin receives when buildWeb registers it. */
import type { Logger } from '../../core/logger.ts';
import type { Clock } from '../../core/clock.ts';
import type { WebServices } from '../services.ts';

export interface RouteOptions {
  services: WebServices;
  logger: Logger;
  clock: Clock;
}
