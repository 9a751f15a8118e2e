/** The spool's public face: openSpool() and the types callers need. */
export { openSpool, type Spool, type SpoolDeps, type QueueEntry, type ListFilter, type MessageDetails } from './spool.ts';
export { type QueueRecord, type RecipientRecord, type RecipientState, retryDelay, pendingRecipients } from './record.ts';
export { QUEUE_STATES, type QueueFolder, spoolPaths } from './paths.ts';
export { toCrlf } from './badmail.ts';
