/** The delivery side's public face. */
export { createDeliveryManager, type DeliveryManager, type DeliveryDeps } from './manager.ts';
export { explainReply, explainOutcome, type Explanation } from './explain.ts';
export type { UpstreamStatus } from './routes.ts';
export type { QuotaStatus } from './quotas.ts';
